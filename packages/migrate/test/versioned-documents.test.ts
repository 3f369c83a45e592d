import { createDataLayer, type ObjectId, Repository, type UpgradeBatch, ValidationError } from '@caas-db/core';
import { createTestClient } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { ticketsV1, ticketsV2 } from './fixtures/tickets.js';

// Two services side by side on one database, as in a rolling deploy: one runs version 1 of the
// model, the other version 2.
const client = createTestClient();
const v1 = createDataLayer({ client }).repository(ticketsV1, Repository, 'acme');
const v2 = createDataLayer({ client }).repository(ticketsV2, Repository, 'acme');
const v2WritingBack = createDataLayer({ client }).repository({ ...ticketsV2, writeBackUpgrades: true }, Repository, 'acme');

describe('versioned documents across a rolling deploy', () => {
  it('version 2 reads version-1 documents upgraded, without writing them', async () => {
    const old = await v1.create({ title: 'printer on fire' });
    expect(old.schema_version).toBe(1);
    expect(await v2.findById(old._id)).toMatchObject({ title: 'printer on fire', priority: 0, schema_version: 2 });
    const page = await v2.findMany({});
    expect(page.items.find((item) => String(item._id) === String(old._id))).toMatchObject({ priority: 0 });
    // Lazily: the stored document is untouched.
    expect(await v1.findById(old._id)).toEqual(old);
  });

  it('version 2 writes a version-1 document and reads back its own value', async () => {
    const old = await v1.create({ title: 'slow wifi' });
    await v2.update(old._id, { priority: 5 });
    expect(await v2.findById(old._id)).toMatchObject({ title: 'slow wifi', priority: 5, schema_version: 2 });
    // Version 1 still reads it (the extra field is carried along) and writes its own fields.
    expect(await v1.update(old._id, { title: 'slow wifi again' })).toMatchObject({ priority: 5, schema_version: 1 });
    expect(await v2.findById(old._id)).toMatchObject({ title: 'slow wifi again', priority: 5 });
  });

  it('version 1 reads and writes version-2 documents and never downgrades them', async () => {
    const fresh = await v2.create({ title: 'new laptop', priority: 3 });
    expect(fresh.schema_version).toBe(2);
    expect(await v1.findById(fresh._id)).toMatchObject({ title: 'new laptop', priority: 3, schema_version: 2 });
    await v1.update(fresh._id, { title: 'new laptop, urgent' });
    expect(await v2.findById(fresh._id)).toMatchObject({ title: 'new laptop, urgent', priority: 3, schema_version: 2 });
  });

  it('upgrades projected reads of old documents too, returning only the projection', async () => {
    const old = await v1.create({ title: 'projected' });
    expect(await v2.findById(old._id, { projection: { priority: 1 } })).toEqual({ _id: old._id, priority: 0 });
    expect(await v2.findById(old._id, { projection: { title: 1 } })).toEqual({ _id: old._id, title: 'projected' });
  });

  it('writes the upgrade back when the model asks for it, and version 1 still reads it', async () => {
    const old = await v1.create({ title: 'write me back' });
    expect(await v2WritingBack.findById(old._id)).toMatchObject({ priority: 0, schema_version: 2 });
    expect(await v1.findById(old._id)).toMatchObject({ title: 'write me back', priority: 0, schema_version: 2 });
  });

  it('upgrades stored documents in bounded batches with a checkpoint, and only once under concurrency', async () => {
    for (let index = 0; index < 25; index += 1) await v1.create({ title: `bulk ${index}` });
    const countOld = async () => (await v1.findMany({ schema_version: 1 } as never, { limit: 500 })).items.length;
    expect(await countOld()).toBeGreaterThanOrEqual(25);
    const dry = await v2.upgradeStored({ batchSize: 500, dryRun: true });
    expect(dry.outdated).toBeGreaterThanOrEqual(25);
    expect(dry.upgraded).toBe(0);
    let after: ObjectId | null = null;
    let batches = 0;
    let upgraded = 0;
    do {
      // Two upgraders racing over the same batch write each document once (filter on its old version).
      const [mine, theirs]: UpgradeBatch[] = await Promise.all([
        v2.upgradeStored({ batchSize: 10, after }),
        v2WritingBack.upgradeStored({ batchSize: 10, after }),
      ]);
      expect(mine?.scanned).toBe(theirs?.scanned);
      upgraded += (mine?.upgraded ?? 0) + (theirs?.upgraded ?? 0);
      after = mine?.lastId ?? null;
      batches += 1;
    } while (after);
    expect(batches).toBeGreaterThan(3);
    expect(upgraded).toBe(dry.outdated);
    expect(await countOld()).toBe(0);
  });

  it('refuses a missing upgrade, and schema_version writes by anything but an upgrade', async () => {
    const old = await v1.create({ title: 'gap' });
    const v3 = createDataLayer({ client }).repository(
      { ...ticketsV2, schemaVersion: 3, upgrades: { 2: (document) => document } },
      Repository,
      'acme',
    );
    await expect(v3.findById(old._id)).rejects.toBeInstanceOf(ValidationError);
    await expect(v2.updateWith(old._id, { $set: { schema_version: 2 } })).rejects.toBeInstanceOf(ValidationError);
    await expect(v2.findOneAndUpdate({ _id: old._id }, { $set: { priority: 1 } })).resolves.toMatchObject({ priority: 1 });
    await expect(v2.upgradeStored({ batchSize: 0 })).rejects.toBeInstanceOf(ValidationError);
  });
});
