import { type CommandStartedEvent, createDataLayer, ObjectId, TenancyViolationError } from '@caas-db/core';
import { unsafeDatabase, unsafeDriver } from '@caas-db/core/unsafe';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTenancy,
  InProcessRateLimitStore,
  QuotaExceededError,
  RedisRateLimitStore,
  TENANT_DATABASE_OWNER_COLLECTION,
  TenantDatabaseOwnerError,
  tenantDatabaseName,
} from '../src/index.js';

describe('tenantDatabaseName', () => {
  it('derives a legal database name, hashing ids that would be too long into names no readable one can take', () => {
    expect(tenantDatabaseName('acme')).toBe('caas_t_acme');
    const long = 'a'.repeat(64);
    const hashed = tenantDatabaseName(long);
    expect(hashed).toMatch(/^caas_t__[0-9a-f]{55}$/);
    expect(hashed.length).toBe(63);
    expect(tenantDatabaseName('a'.repeat(63))).not.toBe(hashed);
  });

  it('refuses an invalid tenant id or prefix instead of deriving a name from it', () => {
    expect(() => tenantDatabaseName('../admin')).toThrow(expect.objectContaining({ code: 'E_VALIDATION' }));
    expect(() => tenantDatabaseName('acme', 'a'.repeat(40))).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
  });
});

describe('database-per-tenant strategy, chosen per plan', () => {
  const client = createTestClient();
  const prefix = `s${testDatabaseName().slice(-6)}`;
  const tenancy = createTenancy({ strategy: { databasePerTenantPlans: ['enterprise'], databasePrefix: prefix } });
  const data = createDataLayer({ client, plugins: [tenancy] });

  beforeAll(async () => {
    await data.clients.create({ tenant_id: 'big', name: 'Big Co', region: 'eu-west-1', plan: 'enterprise' });
    await data.clients.create({ tenant_id: 'small', name: 'Small Co', region: 'eu-west-1', plan: 'starter' });
    await tenancy.provisionTenant('big');
  });

  afterAll(async () => {
    expect(await data.admin.listDatabases()).toContain(`${prefix}_big`);
    await data.admin.dropDatabase(tenantDatabaseName('big', prefix));
    expect(await data.admin.listDatabases()).not.toContain(`${prefix}_big`);
  });

  it('keeps an enterprise tenant’s documents in its own database and the others shared', async () => {
    expect(await tenancy.strategyOf('big')).toBe('database');
    expect(await tenancy.strategyOf('small')).toBe('shared');
    expect(await tenancy.databaseOf('big')).toBe(`${prefix}_big`);
    expect(await tenancy.databaseOf('small')).toBe(testDatabaseName());
    const bigUser = await data.forTenant('big').users.create({ external_id: 'u', profile: { display_name: 'Big' } });
    const smallUser = await data.forTenant('small').users.create({ external_id: 'u', profile: { display_name: 'Small' } });
    const [inOwn, inShared] = await Promise.all([
      unsafeDatabase(client, `${prefix}_big`).collection('users').countDocuments({ tenant_id: 'big' }),
      unsafeDatabase(client).collection('users').countDocuments({ tenant_id: 'small' }),
    ]);
    expect([inOwn, inShared]).toEqual([1, 1]);
    expect(await unsafeDatabase(client).collection('users').countDocuments({ tenant_id: 'big' })).toBe(0);
    expect((await data.forTenant('big').users.getById(bigUser._id)).profile.display_name).toBe('Big');
    expect(await data.forTenant('big').users.findById(smallUser._id)).toBeNull();
  });

  it('provisions a tenant database with every tenant-owned index', async () => {
    const indexes = await unsafeDatabase(client, `${prefix}_big`).collection('messages').listIndexes().toArray();
    expect(indexes.map((index) => index.name)).toContain('tenant_conversation_id');
  });
});

describe('tenant database owner', () => {
  const client = createTestClient();
  const prefix = `o${testDatabaseName().slice(-6)}`;
  const tenancy = createTenancy({ requireActiveTenant: false, strategy: { default: 'database', databasePrefix: prefix } });
  const data = createDataLayer({ client, plugins: [tenancy] });
  const owner = new ObjectId();
  /** Every command the driver sends, with the database and collection it addresses. */
  const sent: Array<{ database: string; command: string; collection: unknown }> = [];
  const record = (event: CommandStartedEvent) =>
    sent.push({ database: event.databaseName, command: event.commandName, collection: event.command[event.commandName] });

  beforeAll(() => {
    unsafeDriver(client).on('commandStarted', record);
  });

  afterAll(async () => {
    unsafeDriver(client).off('commandStarted', record);
    for (const name of await data.admin.listDatabases()) if (name.startsWith(`${prefix}_`)) await data.admin.dropDatabase(name);
  });

  const ownerRecords = (tenant: string) =>
    unsafeDatabase(client, tenantDatabaseName(tenant, prefix)).collection(TENANT_DATABASE_OWNER_COLLECTION).find({}).toArray();

  it('claims a tenant database on first use, once, and records its owner', async () => {
    const tenant = data.forTenant('owner-a');
    await Promise.all(Array.from({ length: 5 }, (_, index) => tenant.groups.create({ name: `g${index}`, owner_id: owner })));
    await tenant.groups.count();
    const checks = sent.filter((entry) => entry.collection === TENANT_DATABASE_OWNER_COLLECTION);
    expect(checks).toEqual([
      { database: tenantDatabaseName('owner-a', prefix), command: 'find', collection: TENANT_DATABASE_OWNER_COLLECTION },
      { database: tenantDatabaseName('owner-a', prefix), command: 'insert', collection: TENANT_DATABASE_OWNER_COLLECTION },
    ]);
    expect(await ownerRecords('owner-a')).toEqual([expect.objectContaining({ _id: 'owner', tenant_id: 'owner-a' })]);
  });

  it('lets two processes of the same tenant race for the claim: both get in, one record', async () => {
    const otherProcess = createDataLayer({
      client,
      plugins: [createTenancy({ requireActiveTenant: false, strategy: { default: 'database', databasePrefix: prefix } })],
    });
    const layers = [data, otherProcess];
    await Promise.all(layers.map((layer, index) => layer.forTenant('owner-b').groups.create({ name: `p${index}`, owner_id: owner })));
    expect(await ownerRecords('owner-b')).toEqual([expect.objectContaining({ _id: 'owner', tenant_id: 'owner-b' })]);
    expect(await data.forTenant('owner-b').groups.count()).toBe(2);
  });

  it('refuses a tenant whose database another tenant owns, sending nothing but the owner check to it', async () => {
    const database = tenantDatabaseName('owner-c', prefix);
    const claim = { _id: 'owner', tenant_id: 'someone-else', schema_version: 1 } as never;
    await unsafeDatabase(client, database).collection(TENANT_DATABASE_OWNER_COLLECTION).insertOne(claim);
    sent.length = 0;
    const tenant = data.forTenant('owner-c');
    for (const call of [
      () => tenant.groups.create({ name: 'x', owner_id: owner }),
      () => tenant.groups.count(),
      () => tenancy.provisionTenant('owner-c'),
    ]) {
      const error = await call().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TenantDatabaseOwnerError);
      expect(error).toBeInstanceOf(TenancyViolationError);
      expect(error).toMatchObject({ code: 'E_TENANCY_VIOLATION', tenant: 'owner-c', database });
      expect((error as Error).message).not.toContain('someone-else');
    }
    const toDatabase = sent.filter((entry) => entry.database === database);
    expect(toDatabase.length).toBeGreaterThan(0);
    expect(toDatabase.filter((entry) => entry.collection !== TENANT_DATABASE_OWNER_COLLECTION)).toEqual([]);
    expect(toDatabase.map((entry) => entry.command).filter((command) => command !== 'find' && command !== 'insert')).toEqual([]);
    const collections = await unsafeDatabase(client, database).listCollections({}, { nameOnly: true }).toArray();
    expect(collections.map((collection) => collection.name)).toEqual([TENANT_DATABASE_OWNER_COLLECTION]);
    expect(await ownerRecords('owner-c')).toEqual([claim]);
  });
});

describe('quotas', () => {
  const client = createTestClient();
  const tenancy = createTenancy({
    requireActiveTenant: false,
    quotas: {
      limits: (tenant) => ({ documents: { groups: tenant?.plan === 'pro' ? 100 : 5, messages: 1000 }, bytes: { files: 3000 } }),
    },
  });
  const data = createDataLayer({ client, plugins: [tenancy] });
  const owner = new ObjectId();

  beforeAll(async () => {
    await data.syncIndexes();
  });

  it('allows writes up to the limit and refuses the next one, writing nothing', async () => {
    const tenant = data.forTenant('quota-a');
    for (let index = 0; index < 5; index += 1) await tenant.groups.create({ name: `g${index}`, owner_id: owner });
    const error = await tenant.groups.create({ name: 'one too many', owner_id: owner }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(QuotaExceededError);
    expect(error).toMatchObject({
      code: 'E_QUOTA_EXCEEDED',
      quota: 'documents',
      collection: 'groups',
      limit: 5,
      current: 5,
      tenant: 'quota-a',
    });
    expect(await tenant.groups.count()).toBe(5);
  });

  it('frees quota when documents are deleted', async () => {
    const tenant = data.forTenant('quota-b');
    const groups = await tenant.groups.createMany(Array.from({ length: 5 }, (_, index) => ({ name: `g${index}`, owner_id: owner })));
    await expect(tenant.groups.create({ name: 'x', owner_id: owner })).rejects.toBeInstanceOf(QuotaExceededError);
    await tenant.groups.delete(groups[0]?._id ?? '');
    await expect(tenant.groups.create({ name: 'fits again', owner_id: owner })).resolves.toMatchObject({ name: 'fits again' });
    expect((await tenancy.usage?.usageOf('quota-b'))?.groups?.documents).toBe(5);
  });

  it('refuses an ordered batch that would cross the limit as a whole (an unordered one: see quotas-derived.test.ts)', async () => {
    const tenant = data.forTenant('quota-c');
    await tenant.groups.createMany(Array.from({ length: 3 }, (_, index) => ({ name: `g${index}`, owner_id: owner })));
    await expect(
      tenant.groups.createMany(Array.from({ length: 3 }, (_, index) => ({ name: `h${index}`, owner_id: owner }))),
    ).rejects.toBeInstanceOf(QuotaExceededError);
    expect(await tenant.groups.count()).toBe(3);
  });

  it('lets 40 concurrent writers store exactly the limit, never more (zero slack)', async () => {
    const tenant = data.forTenant('quota-d');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, index) => tenant.groups.create({ name: `c${index}`, owner_id: owner })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(5);
    const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(refused.every((outcome) => outcome.reason instanceof QuotaExceededError)).toBe(true);
    expect(await tenant.groups.count()).toBe(5);
    expect((await tenancy.usage?.usageOf('quota-d'))?.groups?.documents).toBe(5);
  });

  it('gives a reservation back when the write fails', async () => {
    const tenant = data.forTenant('quota-e');
    await tenant.users.create({ external_id: 'dup', profile: { display_name: 'D' } });
    await tenant.groups.create({ name: 'g', owner_id: owner });
    const first = await tenant.groups.findOne({ name: 'g' });
    if (!first) throw new Error('the group was not stored');
    await expect(tenant.groups.create({ _id: first._id, name: 'g again', owner_id: owner })).rejects.toMatchObject({
      code: 'E_DUPLICATE_KEY',
    });
    expect((await tenancy.usage?.usageOf('quota-e'))?.groups?.documents).toBe(1);
  });

  it('limits stored bytes approximately (BSON size of inserted documents)', async () => {
    const tenant = data.forTenant('quota-f');
    const file = (key: string) => ({
      uploader_id: owner,
      storage: { provider: 's3' as const, bucket: 'b', key },
      metadata: { filename: 'f'.repeat(400), mime_type: 'text/plain', size: 1, checksum: 'sha256:0123456789' },
    });
    let stored = 0;
    let error: unknown;
    for (let index = 0; index < 20 && !error; index += 1) {
      await tenant.files.create(file(`k${index}`)).then(
        () => {
          stored += 1;
        },
        (caught: unknown) => {
          error = caught;
        },
      );
    }
    expect(error).toMatchObject({ quota: 'bytes', collection: 'files', limit: 3000 });
    expect(stored).toBeGreaterThan(2);
    expect((await tenancy.usage?.usageOf('quota-f'))?.files?.bytes).toBeLessThanOrEqual(3000);
  });
});

describe('write rate', () => {
  it('refuses writes beyond the burst in process', async () => {
    const client = createTestClient();
    const tenancy = createTenancy({ requireActiveTenant: false, quotas: { limits: { writes: { perSecond: 1, burst: 5 } } } });
    const data = createDataLayer({ client, plugins: [tenancy] });
    const tenant = data.forTenant('rate-a');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, index) => tenant.events.create({ type: 'x.y', occurred_at: new Date(), properties: { index } })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled').length).toBeGreaterThanOrEqual(5);
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled').length).toBeLessThanOrEqual(6);
    const refused = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(refused?.reason).toMatchObject({ quota: 'writeRate', limit: 1 });
  });

  it('counts a message and its last_message as one write: a send is refused whole or stored whole, never half', async () => {
    const client = createTestClient();
    let now = 0;
    const tenancy = createTenancy({
      requireActiveTenant: false,
      quotas: { limits: { writes: { perSecond: 1, burst: 3 } }, rateLimitStore: new InProcessRateLimitStore(() => now) },
    });
    // The messages reference a conversation the test does not create: the reference check is off.
    const data = createDataLayer({ client, integrity: { messages: false }, plugins: [tenancy] });
    const tenant = data.forTenant('rate-follow-up');
    const { conversation } = await tenant.conversations.createDirect([new ObjectId(), new ObjectId()]);
    now += 60_000; // a full bucket for the sends
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, (_, index) =>
        tenant.messages.create({
          conversation_id: conversation._id,
          sender_id: new ObjectId(),
          content: { type: 'text', encrypted_data: `eA${index}` },
        }),
      ),
    );
    const stored = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(stored).toHaveLength(3);
    for (const refusal of refused) expect(refusal.reason).toMatchObject({ quota: 'writeRate', outcome: undefined });
    expect(await tenant.messages.count()).toBe(3);
  });

  it('refills over time', async () => {
    let now = 0;
    const store = new InProcessRateLimitStore(() => now);
    expect((await store.take('k', 2, 1, 2)).allowed).toBe(true);
    expect((await store.take('k', 1, 1, 2)).allowed).toBe(false);
    now = 1500;
    expect((await store.take('k', 1, 1, 2)).allowed).toBe(true);
  });

  it('shares one bucket across instances through Redis', async () => {
    const redis = new Redis(testEnvironment().redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      const key = `bucket-${new ObjectId().toHexString()}`;
      const [first, second] = [new RedisRateLimitStore(redis), new RedisRateLimitStore(redis)];
      const results = await Promise.all(Array.from({ length: 20 }, (_, index) => (index % 2 ? first : second).take(key, 1, 0.001, 7)));
      expect(results.filter((result) => result.allowed)).toHaveLength(7);
    } finally {
      await redis.quit();
    }
  });
});
