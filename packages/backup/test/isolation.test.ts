import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalKeyProvider, filesystemTarget, listArchives, openArchive } from '@caas-db/archive';
import { createDataLayer, type Document, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { waitFor } from '@caas-db/testing';
import { createTestClient, requireCapability, testDatabaseName } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackupService, CHANGES_STREAM, capturePipeline, createBackupService, PreImagesRequiredError } from '../src/index.js';
import { MODEL_COLLECTIONS, populateTenant } from './support/tenant-data.js';

const client = createTestClient();
const data = createDataLayer({ client });
const keyProvider = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 9) }, current: 'k1' });
let directory: string;
let backups: BackupService;
/** Whether the server keeps pre-images (`changeStreamPreAndPostImages`, MongoDB 6.0+; mongo-java-server does not). */
let preImages = false;

/** The `_id`s (hex) of every document of `tenant`, in every collection. */
async function idsOf(tenant: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const collection of MODEL_COLLECTIONS)
    for (const document of await unsafeDatabase(client).collection(collection).find({ tenant_id: tenant }).toArray())
      ids.add(String(document._id));
  return ids;
}

/** Every id a recorded change names (its `_id`, and its document's `_id`). */
function idsNamedBy(change: Document): string[] {
  return [change.id, change.d?._id].filter((id) => id !== undefined).map(String);
}

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-backup-isolation-'));
  backups = createBackupService({ data, target: filesystemTarget(directory, { fsync: false }), keyProvider, pageSize: 20 });
  await populateTenant(data, 'hooli');
  await populateTenant(data, 'pied');
  preImages = await Promise.resolve()
    .then(() => backups.enablePreImages())
    .then(
      () => true,
      () => false,
    );
  if (!preImages) console.info('this server keeps no change-stream pre-images: the pre-image tests check the refusal instead');
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('change capture under the shared strategy never records another tenant’s change', () => {
  it('a backup’s catch-up holds no other tenant’s delete or update made while it ran, and does hold its own tenant’s', async () => {
    const pied = await idsOf('pied');
    const [piedFile] = await unsafeDatabase(client).collection('files').find({ tenant_id: 'pied' }).toArray();
    const [piedUser] = await unsafeDatabase(client).collection('users').find({ tenant_id: 'pied' }).toArray();
    let marker: string | undefined;
    const backup = await backups.create({
      tenant: 'hooli',
      label: 'during-foreign-writes',
      // While the scan runs (after its first page): another tenant's hard delete, update and
      // insert, then one insert of this tenant (which the catch-up must record).
      onProgress: async () => {
        if (marker) return;
        marker = new ObjectId().toHexString();
        await data.forTenant('pied').files.delete(piedFile?._id as ObjectId);
        await data.forTenant('pied').users.addRelationship(piedUser?._id as ObjectId, new ObjectId(), 'blocked');
        await data.forTenant('pied').events.create({ type: 'message.sent', occurred_at: new Date() });
        await data.forTenant('hooli').events.create({ type: 'message.sent', occurred_at: new Date(), properties: { marker } });
      },
    });
    const archive = await openArchive({ target: filesystemTarget(directory), keyProvider, name: backup.name });
    const changes: Document[] = [];
    for await (const change of archive.documents(CHANGES_STREAM)) changes.push(change);
    expect(changes.some((change) => change.d?.properties?.marker === marker)).toBe(true);
    for (const change of changes) {
      expect(change.op, JSON.stringify(change)).not.toBe('gap');
      for (const id of idsNamedBy(change)) expect(pied.has(id), `another tenant's ${id} in ${JSON.stringify(change)}`).toBe(false);
      if (change.d) expect(change.d.tenant_id).toBe('hooli');
    }
    // Without pre-images a delete names no tenant: the catch-up does not ask for deletes, and says so.
    expect(backup.metadata.consistency.deletes).toBe(preImages ? 'pre-images' : 'not-captured');
  });

  it('a journal needs pre-images there: it refuses with PreImagesRequiredError without them, and with them records only its own deletes', async () => {
    const journal = backups.journal('hooli', { flushIntervalMS: 20 });
    if (!preImages) {
      const error = await journal.start().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(PreImagesRequiredError);
      expect(error).toMatchObject({ code: 'E_BACKUP_PRE_IMAGES_REQUIRED', tenant: 'hooli' });
      await expect(journal.catchUp()).rejects.toBeInstanceOf(PreImagesRequiredError);
      expect(await listArchives(filesystemTarget(directory), 'journals/hooli/')).toEqual([]);
      return;
    }
    await journal.start();
    const pied = await idsOf('pied');
    const [piedFile] = await unsafeDatabase(client).collection('files').find({ tenant_id: 'pied' }).toArray();
    const [hooliFile] = await unsafeDatabase(client).collection('files').find({ tenant_id: 'hooli' }).toArray();
    await data.forTenant('pied').files.delete(piedFile?._id as ObjectId);
    await data.forTenant('hooli').files.delete(hooliFile?._id as ObjectId);
    const seen: Document[] = [];
    await waitFor(
      async () => {
        seen.length = 0;
        for (const listing of await listArchives(filesystemTarget(directory), 'journals/hooli/')) {
          const segment = await openArchive({ target: filesystemTarget(directory), keyProvider, name: listing.name });
          for await (const change of segment.documents('events')) seen.push(change);
        }
        return seen.some((change) => change.op === 'delete' && String(change.id) === String(hooliFile?._id));
      },
      { what: 'the journal to record its own tenant’s delete' },
    );
    await journal.stop();
    for (const change of seen)
      for (const id of idsNamedBy(change)) expect(pied.has(id), `another tenant's ${id} in ${JSON.stringify(change)}`).toBe(false);
  });
});

describe('time-series collections', () => {
  it('are read by the scan and left out of change streams (MongoDB opens none on them)', async (context) => {
    requireCapability(context, 'timeSeries');
    const layer = createDataLayer({ client: createTestClient({ database: `${testDatabaseName()}_series` }) });
    const service = createBackupService({ data: layer, target: filesystemTarget(directory, { fsync: false }), keyProvider });
    expect((await layer.forTenant('hooli').metrics.syncIndexes()).timeSeries).toBe(true);
    await layer.forTenant('hooli').metrics.record('latency_ms', 12.5, { tags: { region: 'eu' } });
    await layer.forTenant('hooli').events.create({ type: 'message.sent', occurred_at: new Date() });
    const backup = await service.create({ tenant: 'hooli', label: 'series' });
    expect(backup.metadata.counts.metrics).toBe(1);
    expect(backup.metadata.consistency.notCaughtUp).toEqual(['metrics']);
  });
});

describe('capturePipeline', () => {
  it('asks the server for deletes only where they can be attributed to the tenant', () => {
    const asText = (isolation: 'fields' | 'pre-images' | 'database') => JSON.stringify(capturePipeline('hooli', isolation));
    // Shared collections without pre-images: every clause names the tenant, or is a collection-wide event.
    const fields = capturePipeline('hooli', 'fields')[0]?.$match.$or as Document[];
    for (const clause of fields)
      expect(Object.values(clause).includes('hooli') || JSON.stringify(clause).includes('"drop"'), JSON.stringify(clause)).toBe(true);
    expect(asText('fields')).not.toContain('"delete"');
    // With pre-images: deletes are matched on the pre-image's tenant, which then leaves the event.
    expect(asText('pre-images')).toContain('"fullDocumentBeforeChange.tenant_id":"hooli"');
    expect(capturePipeline('hooli', 'pre-images').at(-1)).toEqual({ $unset: 'fullDocumentBeforeChange' });
    // The tenant's own database: every event is the tenant's.
    expect(asText('database')).toContain('"delete"');
  });
});
