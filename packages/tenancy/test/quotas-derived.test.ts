import { createDataLayer, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTenancy, QuotaExceededError } from '../src/index.js';

/**
 * Quota accounting derived from what each write kind really did: deletes of every kind free quota,
 * upserts that update are never refused, batches are admitted per document, partial failures are
 * refunded per item, and usage can be verified and repaired against a recount.
 */
const client = createTestClient();
const tenancy = createTenancy({
  requireActiveTenant: false,
  quotas: { limits: { documents: { groups: 5, settings: 1, aggregations: 2, messages: 10 } } },
});
// These messages reference conversations the test does not create: the reference check is off.
const data = createDataLayer({ client, integrity: { messages: false }, plugins: [tenancy] });
const batched = createDataLayer({ client, integrity: { messages: false }, plugins: [tenancy], batching: { messages: true } });
const owner = new ObjectId();
const group = (name: string, _id?: ObjectId) => ({ ...(_id && { _id }), name, owner_id: owner });

const usageOf = async (tenant: string, collection: string) => (await tenancy.usage?.usageOf(tenant))?.[collection]?.documents;
const stored = (tenant: string, collection: string) => unsafeDatabase(client).collection(collection).countDocuments({ tenant_id: tenant });

beforeAll(async () => {
  await data.syncIndexes();
});

describe('deletes free quota, whatever the write kind', () => {
  it('frees what bulkWrite delete items removed', async () => {
    const tenant = data.forTenant('derived-bulk-delete');
    const created = await tenant.groups.bulkWrite(Array.from({ length: 5 }, (_, index) => ({ insert: group(`g${index}`) })));
    const ids = created.items.map((item) => (item.status === 'ok' ? item.id : undefined));
    const removed = await tenant.groups.bulkWrite([{ delete: { id: ids[0] as ObjectId } }, { delete: { id: ids[1] as ObjectId } }]);
    expect(removed.deleted).toBe(2);
    expect(await stored('derived-bulk-delete', 'groups')).toBe(3);
    expect(await usageOf('derived-bulk-delete', 'groups')).toBe(3);
    await tenant.groups.createMany([group('again 1'), group('again 2')]);
    await expect(tenant.groups.create(group('one too many'))).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await usageOf('derived-bulk-delete', 'groups')).toBe(5);
  });

  it('frees what a mixed bulkWrite removed while it inserts', async () => {
    const tenant = data.forTenant('derived-bulk-mixed');
    const [first, second] = await tenant.groups.createMany([group('a'), group('b')]);
    await tenant.groups.bulkWrite([
      { delete: { id: first?._id as ObjectId } },
      { insert: group('c') },
      { delete: { id: second?._id as ObjectId } },
    ]);
    expect(await stored('derived-bulk-mixed', 'groups')).toBe(1);
    expect(await usageOf('derived-bulk-mixed', 'groups')).toBe(1);
  });

  it('frees what deleteOne and deleteMany removed', async () => {
    const tenant = data.forTenant('derived-deletes');
    const groups = await tenant.groups.createMany(Array.from({ length: 5 }, (_, index) => group(`g${index}`)));
    await tenant.groups.delete(groups[0]?._id as ObjectId);
    const repository = tenant.groups as unknown as { collection: { deleteMany(name: string, filter: object): Promise<unknown> } };
    await repository.collection.deleteMany('deleteMany', { name: { $in: ['g1', 'g2'] } });
    expect(await stored('derived-deletes', 'groups')).toBe(2);
    expect(await usageOf('derived-deletes', 'groups')).toBe(2);
  });
});

describe('upserts at the document limit', () => {
  it('never refuses a settings.set that updates the existing document', async () => {
    const tenant = data.forTenant('derived-settings');
    await tenant.settings.set('theme', 'dark');
    expect(await usageOf('derived-settings', 'settings')).toBe(1);
    await tenant.settings.set('locale', 'fr');
    await tenant.settings.set('theme', 'light');
    expect(await tenant.settings.get()).toEqual({ theme: 'light', locale: 'fr' });
    // A user's settings are a second document: that one is an insert, over the limit.
    await expect(tenant.settings.set('theme', 'dark', new ObjectId())).rejects.toMatchObject({ quota: 'documents', limit: 1 });
    expect(await stored('derived-settings', 'settings')).toBe(1);
    expect(await usageOf('derived-settings', 'settings')).toBe(1);
  });

  it('never refuses aggregations.increment of an existing rollup, under concurrency too', async () => {
    const tenant = data.forTenant('derived-increment');
    await tenant.aggregations.increment('messages', '2025-01', 'all', { sent: 1 });
    await tenant.aggregations.increment('messages', '2025-01', 'eu', { sent: 1 });
    await Promise.all(Array.from({ length: 20 }, () => tenant.aggregations.increment('messages', '2025-01', 'all', { sent: 1 })));
    expect(await tenant.aggregations.get('messages', '2025-01')).toEqual({ sent: 21 });
    await expect(tenant.aggregations.increment('messages', '2025-01', 'us', { sent: 1 })).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await stored('derived-increment', 'aggregations')).toBe(2);
    expect(await usageOf('derived-increment', 'aggregations')).toBe(2);
  });

  it('lets concurrent first increments of one new rollup take a single slot', async () => {
    const tenant = data.forTenant('derived-increment-race');
    await tenant.aggregations.increment('messages', '2025-02', 'all', { sent: 1 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () => tenant.aggregations.increment('messages', '2025-02', 'new', { sent: 1 })),
    );
    const rejected = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(rejected.map((outcome) => outcome.reason)).toEqual([]);
    expect(await tenant.aggregations.get('messages', '2025-02', 'new')).toEqual({ sent: 20 });
    expect(await stored('derived-increment-race', 'aggregations')).toBe(2);
    expect(await usageOf('derived-increment-race', 'aggregations')).toBe(2);
  });

  it('admits exactly one of many distinct new rollups when one slot is free', async () => {
    const tenant = data.forTenant('derived-increment-distinct');
    await tenant.aggregations.increment('messages', '2025-03', 'all', { sent: 1 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, index) => tenant.aggregations.increment('messages', '2025-03', `k${index}`, { sent: 1 })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(refused.every((outcome) => outcome.reason instanceof QuotaExceededError)).toBe(true);
    expect(await stored('derived-increment-distinct', 'aggregations')).toBe(2);
    expect(await usageOf('derived-increment-distinct', 'aggregations')).toBe(2);
  });
});

describe('batches are admitted per document', () => {
  it('stores exactly the limit of 50 concurrent batched sends, the others refused one by one', async () => {
    const tenant = batched.forTenant('derived-batched');
    const conversation = new ObjectId();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, index) =>
        tenant.messages.create({
          conversation_id: conversation,
          sender_id: owner,
          content: { type: 'text', encrypted_data: `bTE${index}` },
        }),
      ),
    );
    expect(await stored('derived-batched', 'messages')).toBe(10);
    expect(await usageOf('derived-batched', 'messages')).toBe(10);
    const fulfilled = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    // Every caller told its message was stored finds it stored, and the others are refused for the quota.
    expect(fulfilled.length + refused.length).toBe(50);
    expect(refused.every((outcome) => /documents quota/.test(String((outcome.reason as Error).message)))).toBe(true);
    const ids = fulfilled.map((outcome) => (outcome as PromiseFulfilledResult<{ _id: ObjectId }>).value._id);
    expect(
      await unsafeDatabase(client)
        .collection('messages')
        .countDocuments({ _id: { $in: ids } }),
    ).toBe(ids.length);
  });

  it('tells each batched caller its own outcome: 10 stored, 40 QuotaExceededError', async () => {
    const tenant = batched.forTenant('derived-batched-callers');
    const conversation = new ObjectId();
    const ids = Array.from({ length: 50 }, () => new ObjectId());
    const outcomes = await Promise.allSettled(
      ids.map((_id, index) =>
        tenant.messages.create({
          _id,
          conversation_id: conversation,
          sender_id: owner,
          content: { type: 'text', encrypted_data: `bTE${index}` },
        }),
      ),
    );
    const storedIds = new Set(
      (await unsafeDatabase(client).collection('messages').find({ tenant_id: 'derived-batched-callers' }).toArray()).map((message) =>
        String(message._id),
      ),
    );
    expect(storedIds.size).toBe(10);
    outcomes.forEach((outcome, index) => {
      if (outcome.status === 'fulfilled') expect(storedIds.has(String(ids[index]))).toBe(true);
      else {
        expect(outcome.reason).toBeInstanceOf(QuotaExceededError);
        expect(storedIds.has(String(ids[index]))).toBe(false);
      }
    });
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(40);
  });

  it('sends the documents of an unordered insertMany that fit and reports the others by index', async () => {
    const tenant = data.forTenant('derived-unordered');
    await tenant.groups.createMany([group('a'), group('b'), group('c')]);
    const error = await tenant.groups
      .createMany([group('d'), group('e'), group('f'), group('g')], { ordered: false })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toMatchObject({ quota: 'documents', limit: 5, partialAdmission: { sent: [0, 1] } });
    const refused = (error as { partialAdmission: { refused: Map<number, unknown> } }).partialAdmission.refused;
    expect([...refused.keys()]).toEqual([2, 3]);
    expect([...refused.values()].every((item) => item instanceof QuotaExceededError)).toBe(true);
    expect(await stored('derived-unordered', 'groups')).toBe(5);
    expect(await usageOf('derived-unordered', 'groups')).toBe(5);
  });

  it('refuses an ordered insertMany that does not fit as a whole, writing nothing', async () => {
    const tenant = data.forTenant('derived-ordered');
    await tenant.groups.createMany([group('a'), group('b'), group('c')]);
    await expect(tenant.groups.createMany([group('d'), group('e'), group('f')])).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await stored('derived-ordered', 'groups')).toBe(3);
    expect(await usageOf('derived-ordered', 'groups')).toBe(3);
  });
});

describe('partial failures are settled per item', () => {
  it('refunds exactly the documents an unordered insertMany failed to insert', async () => {
    const tenant = data.forTenant('derived-partial-unordered');
    const [existing] = await tenant.groups.createMany([group('a')]);
    await expect(tenant.groups.createMany([group('b'), group('dup', existing?._id), group('c')], { ordered: false })).rejects.toMatchObject(
      { code: 'E_DUPLICATE_KEY' },
    );
    expect(await stored('derived-partial-unordered', 'groups')).toBe(3);
    expect(await usageOf('derived-partial-unordered', 'groups')).toBe(3);
  });

  it('refunds the failed document and everything after it in an ordered insertMany', async () => {
    const tenant = data.forTenant('derived-partial-ordered');
    const [existing] = await tenant.groups.createMany([group('a')]);
    await expect(tenant.groups.createMany([group('b'), group('dup', existing?._id), group('c')])).rejects.toMatchObject({
      code: 'E_DUPLICATE_KEY',
    });
    expect(await stored('derived-partial-ordered', 'groups')).toBe(2);
    expect(await usageOf('derived-partial-ordered', 'groups')).toBe(2);
  });

  it('settles a partly failed bulkWrite by its items: failed inserts refunded, deletes freed', async () => {
    const tenant = data.forTenant('derived-partial-bulk');
    const [existing, doomed] = await tenant.groups.createMany([group('a'), group('b')]);
    const summary = await tenant.groups.bulkWrite(
      [
        { insert: group('c') },
        { insert: group('dup', existing?._id) },
        { delete: { id: doomed?._id as ObjectId } },
        { insert: group('d') },
      ],
      { ordered: false },
    );
    expect(summary.failed).toBe(1);
    expect(await stored('derived-partial-bulk', 'groups')).toBe(3);
    expect(await usageOf('derived-partial-bulk', 'groups')).toBe(3);
  });
});

describe('verify and repair', () => {
  it('finds drift, and two concurrent repairs overwrite it with the recount', async () => {
    const tenant = data.forTenant('derived-repair');
    await tenant.groups.createMany([group('a'), group('b'), group('c')]);
    await tenant.aggregations.increment('messages', '2025-04', 'all', { sent: 1 });
    const usage = tenancy.usage;
    if (!usage) throw new Error('tenancy is not attached');
    await usage.setUsage('derived-repair', 'groups', 42, 99_999);
    await usage.setUsage('derived-repair', 'aggregations', 0, 0);

    const drift = await usage.verify(data, 'derived-repair');
    expect(
      drift.map(({ collection, recorded, counted }) => ({ collection, recorded: recorded.documents, counted: counted.documents })),
    ).toEqual([
      { collection: 'aggregations', recorded: 0, counted: 1 },
      { collection: 'groups', recorded: 42, counted: 3 },
    ]);
    expect(drift.every((check) => !check.consistent)).toBe(true);
    const groupBytes = drift.find((check) => check.collection === 'groups')?.counted.bytes ?? 0;
    expect(groupBytes).toBeGreaterThan(3 * 50);

    const [first, second] = await Promise.all([usage.repair(data, 'derived-repair'), usage.repair(data, 'derived-repair')]);
    expect([...first, ...second].every((check) => check.repaired)).toBe(true);
    expect(await usage.usageOf('derived-repair')).toEqual({
      aggregations: { documents: 1, bytes: expect.any(Number) },
      groups: { documents: 3, bytes: groupBytes },
    });
    expect((await usage.verify(data, 'derived-repair')).every((check) => check.consistent)).toBe(true);
    // Repaired counters enforce again: two more groups fit, the third does not.
    await tenant.groups.createMany([group('d'), group('e')]);
    await expect(tenant.groups.create(group('f'))).rejects.toBeInstanceOf(QuotaExceededError);
  });

  it('refuses to count a platform collection', async () => {
    await expect(tenancy.usage?.verify(data, 'derived-repair', ['billing'])).rejects.toMatchObject({ code: 'E_VALIDATION' });
  });
});
