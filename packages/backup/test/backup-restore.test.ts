import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchiveIntegrityError, canonicalLine, createLocalKeyProvider, filesystemTarget } from '@caas-db/archive';
import { type CommandStartedEvent, createDataLayer, type Document, isCaasDbError, ObjectId, ValidationError } from '@caas-db/core';
import { unsafeDatabase, unsafeDriver } from '@caas-db/core/unsafe';
import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupService, createBackupService, createIdRemap, RestoreVerificationError } from '../src/index.js';
import { MODEL_COLLECTIONS, type Population, populateTenant, snapshotTenant, uniqueSuffix } from './support/tenant-data.js';

const client = createTestClient();
const data = createDataLayer({ client });
const keyProvider = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 7) }, current: 'k1' });
let directory: string;
let backups: BackupService;
let acme: Population;
let backupName: string;
let acmeSnapshot: Record<string, string[]>;
let globexSnapshot: Record<string, string[]>;

/** Every command the driver sends on a tenant-owned collection while `run` runs. */
async function commandsDuring(run: () => Promise<unknown>): Promise<CommandStartedEvent[]> {
  const seen: CommandStartedEvent[] = [];
  const listener = (event: CommandStartedEvent) => {
    const collection = event.command[event.commandName];
    if (typeof collection === 'string' && MODEL_COLLECTIONS.includes(collection)) seen.push(event);
  };
  const driver = unsafeDriver(client);
  driver.on('commandStarted', listener);
  try {
    await run();
  } finally {
    driver.off('commandStarted', listener);
  }
  return seen;
}

/** The tenant ids a command names anywhere (filters, documents, deletes). */
function tenantsNamedBy(event: CommandStartedEvent): Set<string> {
  const tenants = new Set<string>();
  const visit = (value: unknown) => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === 'object' && value !== null && !(value instanceof ObjectId))
      for (const [key, field] of Object.entries(value)) {
        // `tenant_id`, and `fullDocument.tenant_id` in a change stream's own filter.
        if (key === 'tenant_id' || key.endsWith('.tenant_id')) {
          if (typeof field === 'string') tenants.add(field);
          for (const value of (field as { $in?: unknown[] })?.$in ?? []) if (typeof value === 'string') tenants.add(value);
        }
        visit(field);
      }
  };
  visit(event.command);
  return tenants;
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-backup-'));
  backups = createBackupService({
    data,
    target: filesystemTarget(directory, { fsync: false }),
    keyProvider,
    chunkBytes: 4096,
    pageSize: 50,
  });
  acme = await populateTenant(data, 'acme');
  await populateTenant(data, 'globex');
  acmeSnapshot = await snapshotTenant(client, 'acme');
  globexSnapshot = await snapshotTenant(client, 'globex');
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('backup', () => {
  it('backs up every collection of one tenant, reading nothing of any other tenant', async () => {
    expect(backups).toBeDefined();
    const commands = await commandsDuring(async () => {
      const result = await backups.create({ tenant: 'acme', label: 'full' });
      backupName = result.name;
      expect(result.metadata.counts).toEqual(
        Object.fromEntries(MODEL_COLLECTIONS.map((collection) => [collection, acmeSnapshot[collection]?.length])),
      );
      for (const collection of MODEL_COLLECTIONS) expect(result.metadata.counts[collection], collection).toBeGreaterThan(0);
    });
    const reads = commands.filter((event) => event.commandName === 'find');
    expect(reads.length).toBeGreaterThanOrEqual(MODEL_COLLECTIONS.length);
    // getMore and killCursors continue or close a cursor whose opening command is checked here.
    const opening = commands.filter((event) => !['getMore', 'killCursors'].includes(event.commandName));
    for (const event of opening) expect([...tenantsNamedBy(event)], JSON.stringify(event.command)).toEqual(['acme']);
    expect(opening.every((event) => ['find', 'aggregate'].includes(event.commandName))).toBe(true);
  });

  it('verifies a backup file without restoring it: integrity, counts and model schemas', async () => {
    const verification = await backups.verify(backupName);
    expect(verification).toMatchObject({ tenant: 'acme', countsAgree: true, schemaProblems: [] });
    expect(verification.schemaChecked).toBe(Object.values(acmeSnapshot).reduce((sum, lines) => sum + lines.length, 0));
    expect((await backups.list('acme')).map((listing) => listing.name)).toContain(backupName);
  });

  it('refuses invalid options with typed errors naming them', async () => {
    await expect(backups.create({ tenant: 'Not A Tenant!' })).rejects.toBeInstanceOf(ValidationError);
    await expect(backups.restore({ name: 'elsewhere/acme/x' })).rejects.toThrow(/name/);
    await expect(backups.restore({ name: backupName, select: { conversationId: 'nope' } })).rejects.toBeInstanceOf(ValidationError);
    await expect(backups.restore({ name: backupName, select: { from: new Date(2), to: new Date(1) } })).rejects.toBeInstanceOf(
      ValidationError,
    );
    expect(() => createBackupService({ data, target: filesystemTarget(directory), keyProvider, pageSize: 0 })).toThrow(/pageSize/);
  });
});

describe('restore', () => {
  it('into a fresh database, as the same tenant and as another tenant id, equals the source document by document', async () => {
    const freshClient = createTestClient({ database: `${testDatabaseName()}_fresh` });
    const fresh = createDataLayer({ client: freshClient });
    const movedClient = createTestClient({ database: `${testDatabaseName()}_moved` });
    const moved = createDataLayer({ client: movedClient });
    // Two restores at once, into two databases (ids are kept, so one database holds one copy).
    const [sameResult, movedResult] = await Promise.all([
      backups.restore({ name: backupName, data: fresh }),
      backups.restore({ name: backupName, data: moved, tenant: 'initech' }),
    ]);
    expect(sameResult.verification?.collections.messages).toMatchObject({ matchesManifest: true });
    expect(movedResult.verification?.collections.messages).toMatchObject({ matchesManifest: false });
    expect(await snapshotTenant(freshClient, 'acme')).toEqual(acmeSnapshot);
    // Another tenant id: equal modulo tenant_id (the model embeds the tenant nowhere else).
    expect(await snapshotTenant(movedClient, 'initech', { rewriteTo: 'acme' })).toEqual(acmeSnapshot);
    expect(await snapshotTenant(movedClient, 'acme')).toEqual(Object.fromEntries(MODEL_COLLECTIONS.map((collection) => [collection, []])));
  });

  it('as another tenant id into the same shared collections while the source exists (ids remapped): equal modulo tenant and ids, every reference resolved, the source untouched, idempotent', async () => {
    const db = unsafeDatabase(client);
    const documentsOf = async (tenant: string) => {
      const all: Record<string, Document[]> = {};
      for (const collection of MODEL_COLLECTIONS)
        all[collection] = await db
          .collection(collection)
          .find({ tenant_id: tenant }, { sort: { _id: 1 }, promoteValues: false, promoteLongs: false })
          .toArray();
      return all;
    };
    /** Every ObjectId a document holds, at any depth, and the hex ids embedded in its strings. */
    const referencesOf = (value: unknown, found: Set<string> = new Set()): Set<string> => {
      if (value instanceof ObjectId) found.add(value.toHexString());
      else if (typeof value === 'string') for (const hex of value.match(/[0-9a-f]{24}/g) ?? []) found.add(hex);
      else if (Array.isArray(value)) for (const item of value) referencesOf(item, found);
      else if (typeof value === 'object' && value !== null)
        for (const [key, field] of Object.entries(value)) if (key !== 'encrypted_data') referencesOf(field, found);
      return found;
    };
    const source = await documentsOf('acme');
    const sourceIds = new Set(Object.values(source).flatMap((documents) => documents.map((document) => String(document._id))));
    // The fixture references only its own documents: so must the copy.
    for (const documents of Object.values(source))
      for (const document of documents)
        for (const reference of referencesOf(document)) expect(sourceIds.has(reference), reference).toBe(true);

    await expect(backups.restore({ name: backupName, ids: 'remap' })).rejects.toBeInstanceOf(ValidationError);
    const commands = await commandsDuring(async () => {
      const [first] = await Promise.all([
        backups.restore({ name: backupName, tenant: 'acme-twin', ids: 'remap' }),
        // Concurrent with an unrelated restore of the source tenant into another database.
        backups.restore({
          name: backupName,
          data: createDataLayer({ client: createTestClient({ database: `${testDatabaseName()}_${uniqueSuffix()}` }) }),
        }),
      ]);
      expect(first.ids).toBe('remap');
      expect(first.verification?.conversationsChecked).toBe(2);
      expect(first.verification?.inheritedDrift).toEqual([]);
    });
    for (const event of commands.filter((command) => !['getMore', 'killCursors'].includes(command.commandName)))
      if (event.databaseName === client.databaseName)
        expect([...tenantsNamedBy(event)], JSON.stringify(event.command)).toEqual(['acme-twin']);
    expect(await snapshotTenant(client, 'acme')).toEqual(acmeSnapshot);
    expect(await snapshotTenant(client, 'globex')).toEqual(globexSnapshot);

    const twin = await documentsOf('acme-twin');
    const twinIds = new Set(Object.values(twin).flatMap((documents) => documents.map((document) => String(document._id))));
    expect(twinIds.size).toBe(sourceIds.size);
    expect([...twinIds].filter((id) => sourceIds.has(id))).toEqual([]);
    for (const documents of Object.values(twin))
      for (const document of documents)
        for (const reference of referencesOf(document)) expect(twinIds.has(reference), reference).toBe(true);
    // Document by document: the source through the one id mapping (and the tenant rewrite).
    const remap = createIdRemap('acme', 'acme-twin');
    for (const collection of MODEL_COLLECTIONS) {
      const expected = (source[collection] ?? []).map((document) =>
        canonicalLine(remap.document({ ...document, tenant_id: 'acme-twin' }, collection)),
      );
      expect((twin[collection] ?? []).map((document) => canonicalLine(document)).sort(), collection).toEqual(expected.sort());
    }
    // The copy works through the library: its direct conversation is found by its participants,
    // its per-user settings by their user.
    const direct = twin.conversations?.find((conversation) => conversation.type === 'direct') as Document;
    const pair = direct.participants.map((participant: Document) => participant.user_id) as [ObjectId, ObjectId];
    const found = await data.forTenant('acme-twin').conversations.createDirect(pair);
    expect(found.created).toBe(false);
    expect(String(found.conversation._id)).toBe(String(direct._id));
    const alice = twin.settings?.find((setting) => setting.user_id)?.user_id as ObjectId;
    expect((await data.forTenant('acme-twin').settings.get(alice)).theme).toBe('dark');

    // Idempotent: a rerun writes the same ids.
    const before = await snapshotTenant(client, 'acme-twin');
    await backups.restore({ name: backupName, tenant: 'acme-twin', ids: 'remap' });
    expect(await snapshotTenant(client, 'acme-twin')).toEqual(before);
    // A partial restore names the backup's ids: it selects their images in the copy.
    const [conversation] = acme.conversations as [ObjectId];
    await db.collection('messages').deleteMany({ tenant_id: 'acme-twin', conversation_id: remap.map(conversation) });
    const partial = await backups.restore({
      name: backupName,
      tenant: 'acme-twin',
      ids: 'remap',
      select: { conversationId: conversation },
    });
    expect(partial.inserted.messages).toBeGreaterThan(0);
    expect(await snapshotTenant(client, 'acme-twin')).toEqual(before);
    expect(await snapshotTenant(client, 'acme')).toEqual(acmeSnapshot);
  });

  it('replaces the same tenant after an accidental erase, touching no other tenant', async () => {
    const db = unsafeDatabase(client);
    await db.collection('messages').deleteMany({ tenant_id: 'acme' });
    await db.collection('users').updateOne({ tenant_id: 'acme' }, { $set: { 'profile.display_name': 'vandalised' } });
    const commands = await commandsDuring(async () => {
      const result = await backups.restore({ name: backupName });
      expect(result.verification?.conversationsChecked).toBe(2);
    });
    const opening = commands.filter((event) => !['getMore', 'killCursors'].includes(event.commandName));
    expect(opening.some((event) => event.commandName === 'delete')).toBe(true);
    for (const event of opening) expect([...tenantsNamedBy(event)], JSON.stringify(event.command)).toEqual(['acme']);
    expect(await snapshotTenant(client, 'acme')).toEqual(acmeSnapshot);
    expect(await snapshotTenant(client, 'globex')).toEqual(globexSnapshot);
  });

  it('merges: keeps documents that exist, adds the missing ones, and is idempotent', async () => {
    const db = unsafeDatabase(client);
    const [kept] = await db.collection('users').find({ tenant_id: 'acme' }).limit(1).toArray();
    await db.collection('users').updateOne({ _id: kept?._id as ObjectId }, { $set: { 'profile.display_name': 'changed since' } });
    await db.collection('messages').deleteMany({ tenant_id: 'acme', conversation_id: acme.conversations[0] });
    const first = await backups.restore({ name: backupName, mode: 'merge' });
    const second = await backups.restore({ name: backupName, mode: 'merge' });
    expect(first.inserted.messages).toBeGreaterThan(0);
    expect(Object.values(second.inserted).every((count) => count === 0)).toBe(true);
    expect((await db.collection('users').findOne({ _id: kept?._id as ObjectId }))?.profile.display_name).toBe('changed since');
    expect((await snapshotTenant(client, 'acme')).messages).toEqual(acmeSnapshot.messages);
    await backups.restore({ name: backupName });
    expect(await snapshotTenant(client, 'acme')).toEqual(acmeSnapshot);
  });

  it('restores one conversation exactly: its messages with reactions and receipts, its shared files', async () => {
    const db = unsafeDatabase(client);
    const [conversation, other] = acme.conversations as [ObjectId, ObjectId];
    const before = await snapshotTenant(client, 'acme');
    await db.collection('messages').deleteMany({ tenant_id: 'acme', conversation_id: conversation });
    await db.collection('conversations').deleteOne({ _id: conversation });
    // A change in the other conversation after the backup must survive the partial restore.
    await db
      .collection('messages')
      .updateMany({ tenant_id: 'acme', conversation_id: other }, { $set: { 'content.encrypted_preview': 'later' } });
    const afterChange = await snapshotTenant(client, 'acme');
    const result = await backups.restore({ name: backupName, select: { conversationId: conversation.toHexString() } });
    const expectedMessages = before.messages?.filter((line) => line.includes(conversation.toHexString())) ?? [];
    expect(result.inserted.messages).toBe(expectedMessages.length);
    expect(result.inserted.conversations).toBe(1);
    expect(result.inserted.users).toBe(0);
    const now = await snapshotTenant(client, 'acme');
    const otherMessages = afterChange.messages?.filter((line) => !line.includes(conversation.toHexString())) ?? [];
    expect(now.messages?.slice().sort()).toEqual([...expectedMessages, ...otherMessages].sort());
    expect(now.messages?.filter((line) => line.includes('reactions')).length).toBeGreaterThan(0);
    await backups.restore({ name: backupName });
  });

  it('a flipped byte in any chunk or in the manifest fails the restore with a typed error and changes nothing', async () => {
    const listing = (await backups.list('acme')).find((candidate) => candidate.name === backupName);
    expect(listing).toBeDefined();
    const manifest = JSON.parse(await readFile(join(directory, ...backupName.split('/'), 'manifest.json'), 'utf8')) as {
      chunks: Array<{ key: string }>;
    };
    const objects = [...manifest.chunks.map((chunk) => chunk.key), `${backupName}/manifest.json`, `${backupName}/manifest.mac`];
    const before = await snapshotTenant(client, 'acme');
    for (const key of objects) {
      const path = join(directory, ...key.split('/'));
      const original = await readFile(path);
      const damaged = Buffer.from(original);
      const position = Math.floor(damaged.length / 3);
      damaged[position] = (damaged[position] as number) ^ 0x04;
      await writeFile(path, damaged);
      const error = await backups.restore({ name: backupName }).catch((caught: unknown) => caught);
      expect(isCaasDbError(error), key).toBe(true);
      expect((error as { code: string }).code, key).toMatch(/^E_ARCHIVE_/);
      if (key.endsWith('.chunk')) expect(error).toBeInstanceOf(ArchiveIntegrityError);
      await writeFile(path, original);
    }
    expect(await snapshotTenant(client, 'acme')).toEqual(before);
  });

  it('verification fails with RestoreVerificationError when what was written differs from the backup', async () => {
    const freshClient = createTestClient({ database: `${testDatabaseName()}_${uniqueSuffix()}` });
    const fresh = createDataLayer({ client: freshClient });
    // A rewrite that is not a function of the document: what verification expects is not what was written.
    let calls = 0;
    const error = await backups
      .restore({
        name: backupName,
        data: fresh,
        collections: ['users'],
        rewrite: (document) => {
          calls += 1;
          return { ...document, nonce: calls };
        },
      })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RestoreVerificationError);
    expect((error as RestoreVerificationError).mismatches[0]).toMatchObject({ collection: 'users', kind: 'content' });
  });
});
