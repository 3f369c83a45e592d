import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalLine, createLocalKeyProvider, filesystemTarget, listArchives, openArchive } from '@caas-db/archive';
import { BSON, createDataLayer, type DataLayer, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTenancy, tenantDatabaseName } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupService, createBackupService, createIdRemap, JournalGapError, type TenantJournal } from '../src/index.js';
import { snapshotTenant } from './support/tenant-data.js';

// Database-per-tenant: journals of tenants in shared collections need change-stream pre-images,
// which mongo-java-server does not keep (isolation.test.ts covers the shared strategy).
const prefix = `p${createHash('sha256').update(testDatabaseName()).digest('hex').slice(0, 10)}`;
const TENANTS = ['acme', 'globex', 'umbrella'];
const dbOf = (tenant: string) => tenantDatabaseName(tenant, prefix);
const client = createTestClient();
const tenancy = createTenancy({ requireActiveTenant: false, strategy: { default: 'database', databasePrefix: prefix } });
const data = createDataLayer({ client, plugins: [tenancy] });
/** A tenant's documents in its own database. */
const snapshotOwn = (tenant: string) => snapshotTenant(client, tenant, { database: dbOf(tenant) });
const keyProvider = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 3) }, current: 'k1' });
let directory: string;
let backups: BackupService;

const file = (key: string, uploader: ObjectId) => ({
  uploader_id: uploader,
  storage: { provider: 's3' as const, bucket: 'caas-files', key, cdn_url: `https://cdn.example.com/${key}` },
  metadata: { filename: `${key}.png`, mime_type: 'image/png', size: 1024, checksum: 'sha256:abcdef0123456789' },
  encryption: { algorithm: 'AES-256-GCM' as const, encrypted_key: 'a2V5' },
});

/** Inserts and deletes only (see `updatesReplayable`): users, files, analytics events. Returns the writes made. */
async function burst(layer: DataLayer, tenant: string, label: string, deleteFile?: ObjectId): Promise<{ writes: number; file: ObjectId }> {
  const repositories = layer.forTenant(tenant);
  const user = await repositories.users.create({ external_id: `${label}-${tenant}`, profile: { display_name: label } });
  const stored = await repositories.files.create(file(`${label}-${tenant}`, user._id));
  await Promise.all(
    Array.from({ length: 4 }, (_, index) =>
      repositories.events.create({ type: 'message.sent', occurred_at: new Date(), user_id: user._id, properties: { n: index } }),
    ),
  );
  let writes = 6;
  if (deleteFile) {
    await repositories.files.delete(deleteFile);
    writes += 1;
  }
  return { writes, file: stored._id };
}

/** Whether the server reports an update's document in its change event (mongo-java-server does not). */
let updatesReplayable = false;

/** Waits until the wall clock is in a later second than `time` (cluster times have second resolution). */
async function nextSecondAfter(time: Date): Promise<void> {
  await waitFor(() => Math.floor(Date.now() / 1000) > Math.floor(time.getTime() / 1000), { what: 'the next second' });
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-pitr-'));
  for (const tenant of TENANTS) await tenancy.provisionTenant(tenant);
  backups = createBackupService({
    data,
    target: filesystemTarget(directory, { fsync: false }),
    keyProvider,
    chunkBytes: 4096,
    databaseOf: dbOf,
  });
  const probe = new MongoClient(testEnvironment().mongo.uri);
  try {
    const collection = probe.db(`${testDatabaseName()}_probe`).collection<{ _id: number; n: number }>('probe');
    const stream = collection.watch([], { maxAwaitTimeMS: 50 });
    await stream.tryNext();
    await collection.insertOne({ _id: 1, n: 1 });
    await collection.updateOne({ _id: 1 }, { $set: { n: 2 } });
    let update: { operationType?: string; documentKey?: { _id?: unknown } } | null = null;
    await waitFor(
      async () => {
        const event = (await stream.tryNext()) as typeof update;
        if (event?.operationType === 'update') update = event;
        return update !== null;
      },
      { what: 'the probe update event' },
    );
    updatesReplayable = (update as { documentKey?: { _id?: unknown } } | null)?.documentKey?._id === 1;
    await stream.close();
    await probe.db(`${testDatabaseName()}_probe`).dropDatabase();
  } finally {
    await probe.close();
  }
});

afterAll(async () => {
  for (const tenant of TENANTS) await data.admin.dropDatabase(dbOf(tenant));
  await rm(directory, { recursive: true, force: true });
});

async function journalCaughtUp(journal: TenantJournal, events: number): Promise<void> {
  await waitFor(() => journal.received >= events, { what: `${events} journal events` });
}

describe('point-in-time recovery', () => {
  it('full backup + journal replay to T between two bursts yields exactly the snapshot taken at T, into the tenant or a copy', async () => {
    const seed = await burst(data, 'acme', 'seed');
    await burst(data, 'globex', 'seed');
    const journal = backups.journal('acme', { flushIntervalMS: 20 });
    await journal.start();
    const backup = await backups.create({ tenant: 'acme', label: 'before-bursts' });
    await nextSecondAfter(new Date(backup.metadata.finishedAt));
    const seen = journal.received;
    const first = await burst(data, 'acme', 'first', seed.file);
    await burst(data, 'globex', 'first');
    await journalCaughtUp(journal, seen + first.writes);
    const at = journal.lastEventTime as BSON.Timestamp;
    const snapshotAtT = await snapshotOwn('acme');
    const globexBefore = await snapshotOwn('globex');
    const second = await burst(data, 'acme', 'second', first.file);
    await journalCaughtUp(journal, seen + first.writes + second.writes);
    await journal.stop();
    expect(await snapshotOwn('acme')).not.toEqual(snapshotAtT);

    // Journal segments hold only this tenant's changes.
    for (const listing of await listArchives(filesystemTarget(directory), 'journals/acme/')) {
      const segment = await openArchive({ target: filesystemTarget(directory), keyProvider, name: listing.name });
      for await (const change of segment.documents('events')) if (change.d) expect(change.d.tenant_id).toBe('acme');
    }

    const copyClient = createTestClient({ database: `${testDatabaseName()}_copy` });
    const copy = await backups.restoreToPointInTime({
      tenant: 'acme',
      to: at,
      into: 'acme-at-t',
      data: createDataLayer({ client: copyClient }),
    });
    expect(copy.backup).toBe(backup.name);
    expect(copy.changesReplayed).toBeGreaterThanOrEqual(first.writes);
    expect(await snapshotTenant(copyClient, 'acme-at-t', { rewriteTo: 'acme' })).toEqual(snapshotAtT);
    // A copy beside it in the same collections, with ids of its own: the state at T through the id mapping.
    await backups.restoreToPointInTime({
      tenant: 'acme',
      to: at,
      into: 'acme-twin',
      data: createDataLayer({ client: copyClient }),
      ids: 'remap',
    });
    const remap = createIdRemap('acme', 'acme-twin');
    const twin = await snapshotTenant(copyClient, 'acme-twin');
    for (const [collection, lines] of Object.entries(snapshotAtT)) {
      const expected = lines.map((line) =>
        canonicalLine(remap.document({ ...BSON.EJSON.parse(line, { relaxed: false }), tenant_id: 'acme-twin' }, collection)),
      );
      expect(twin[collection]?.slice().sort(), collection).toEqual(expected.sort());
    }
    expect(await snapshotTenant(copyClient, 'acme-at-t', { rewriteTo: 'acme' })).toEqual(snapshotAtT);

    await backups.restoreToPointInTime({ tenant: 'acme', to: at });
    expect(await snapshotOwn('acme')).toEqual(snapshotAtT);
    expect(await snapshotOwn('globex')).not.toEqual({});
    expect((await snapshotOwn('globex')).users?.length).toBe(globexBefore.users?.length ?? 0);
  });

  it('an update in the window is replayed where the server names its document, and is a JournalGapError where it does not', async () => {
    const tenant = 'umbrella';
    await burst(data, tenant, 'seed');
    const journal = backups.journal(tenant, { flushIntervalMS: 20 });
    await journal.start();
    const backup = await backups.create({ tenant, label: 'base' });
    await nextSecondAfter(new Date(backup.metadata.finishedAt));
    const seen = journal.received;
    const [user] = await unsafeDatabase(client, dbOf(tenant)).collection('users').find({ tenant_id: tenant }).toArray();
    // An updateOne (mongo-java-server reports no change event at all for findAndModify).
    await data.forTenant(tenant).users.addRelationship(user?._id as ObjectId, new ObjectId(), 'blocked');
    await journalCaughtUp(journal, seen + 1);
    const at = journal.lastEventTime as BSON.Timestamp;
    const snapshotAtT = await snapshotOwn(tenant);
    await journal.stop();
    const copyClient = createTestClient({ database: `${testDatabaseName()}_umbrella` });
    const restored = backups.restoreToPointInTime({ tenant, to: at, into: 'umbrella-at-t', data: createDataLayer({ client: copyClient }) });
    if (updatesReplayable) {
      await restored;
      expect(await snapshotTenant(copyClient, 'umbrella-at-t', { rewriteTo: tenant })).toEqual(snapshotAtT);
    } else {
      // mongo-java-server reports updates without documentKey._id: the journal records a gap.
      console.info('point-in-time recovery over updates needs change events that name their document; this server reports a gap');
      await expect(restored).rejects.toBeInstanceOf(JournalGapError);
      // Found before anything was written.
      expect(await snapshotTenant(copyClient, 'umbrella-at-t')).toEqual(await snapshotTenant(copyClient, 'nobody'));
    }
  });

  it('refuses a time before any backup and a time the journal has not reached', async () => {
    await expect(backups.restoreToPointInTime({ tenant: 'acme', to: new Date('2000-01-01T00:00:00Z') })).rejects.toMatchObject({
      code: 'E_BACKUP_NOT_FOUND',
    });
    const future = new BSON.Timestamp({ t: Math.floor(Date.now() / 1000) + 3600, i: 0 });
    await expect(backups.restoreToPointInTime({ tenant: 'acme', to: future })).rejects.toBeInstanceOf(JournalGapError);
    await expect(backups.restoreToPointInTime({ tenant: 'acme', to: 'yesterday' as never })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    expect(new ObjectId()).toBeDefined();
  });
});
