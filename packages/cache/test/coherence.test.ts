/**
 * Cache coherence between instances sharing MongoDB and Redis: every in-process entry carries the
 * tags of the documents it holds, whichever tier filled it; a hit is admitted for its tenant like a
 * command; and one tenant's writes leave another tenant's entries alone.
 */
import { createDataClient, createDataLayer, type DataClient, type DataLayer, ObjectId } from '@caas-db/core';
import { createTenancy, type Tenancy, TenantSuspendedError, tenantDatabaseName } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CacheOptions, type CachePlugin, createCache, type RedisClient } from '../src/index.js';
import { isReady, testRedis } from './support/redis-topology.js';

const methods: CacheOptions['methods'] = {
  'users.findById': { ttlMS: 60_000 },
  'users.findByExternalId': { ttlMS: 60_000 },
  'messages.findByConversation': { ttlMS: 60_000 },
  'conversations.listForUser': { ttlMS: 60_000 },
  'clients.findByTenantId': { ttlMS: 60_000 },
};

/** The bound the docs give for another instance's in-process copy to see a write. */
const BUS_BOUND_MS = 1000;

const redisClients: RedisClient[] = [];
const plugins: CachePlugin[] = [];
const clients: DataClient[] = [];

interface Instance {
  data: DataLayer;
  cache: CachePlugin;
  client: DataClient;
  tenancy?: Tenancy;
}

/** One instance of a service: its own MongoDB client, L1 and Redis connections; shared MongoDB and Redis. */
function instance(options: { tenancy?: Parameters<typeof createTenancy>[0]; database?: string } = {}): Instance {
  const redis = testRedis();
  redisClients.push(redis);
  // A generous Redis timeout: on a loaded test machine the 50 ms default turns fills into misses.
  const cache = createCache({ methods, redis, prefix: `${options.database ?? testDatabaseName()}:`, redisTimeoutMS: 5000 });
  plugins.push(cache);
  const client = createDataClient({
    uri: testEnvironment().mongo.uri,
    database: options.database ?? testDatabaseName(),
    monitoring: { wire: true },
  });
  clients.push(client);
  const tenancy = options.tenancy ? createTenancy(options.tenancy) : undefined;
  return { data: createDataLayer({ client, plugins: [...(tenancy ? [tenancy] : []), cache] }), cache, client, ...(tenancy && { tenancy }) };
}

const ready = () =>
  waitFor(async () => redisClients.every(isReady) && plugins.every((plugin) => plugin.cache.ready), {
    what: 'redis ready',
    timeoutMS: 5000,
  });

/** Counts `find` commands on a collection while `action` runs. */
async function findsDuring(client: DataClient, collection: string, action: () => Promise<unknown>): Promise<number> {
  let finds = 0;
  const stop = client.on('command:succeeded', (event) => {
    if (event.commandName === 'find' && event.collection === collection) finds += 1;
  });
  try {
    await action();
  } finally {
    stop();
  }
  return finds;
}

afterAll(async () => {
  for (const plugin of plugins) await plugin.close();
  for (const redis of redisClients) redis.disconnect();
  const [first] = clients;
  if (first)
    await createDataLayer({ client: first })
      .admin.dropDatabase()
      .catch(() => undefined);
  for (const client of clients) await client.close();
});

describe('an entry another instance filled in Redis carries the tags of its documents in L1 too', () => {
  const a = instance();
  const b = instance();
  const ours = a.data.forTenant('acme');
  const theirs = b.data.forTenant('acme');

  beforeAll(async () => {
    await a.data.syncIndexes();
    await ready();
    // B is subscribed to the bus once an invalidation A publishes reaches it.
    await waitFor(
      async () => {
        await a.cache.cache.invalidate(['coherence:handshake']);
        return b.cache.stats().invalidations.remote > 0;
      },
      { what: 'B subscribed to the bus', timeoutMS: 5000 },
    );
  });

  /** A reads (miss: fills L1 and L2), B reads twice: once from L2, once from its L1. */
  async function fillBoth<T>(readA: () => Promise<T>, readB: () => Promise<T>): Promise<void> {
    await readA();
    const l2Hits = b.cache.stats().l2.hits;
    await readB();
    expect(b.cache.stats().l2.hits, 'B read the entry A filled in Redis').toBe(l2Hits + 1);
    const l1Hits = b.cache.stats().l1.hits;
    await readB();
    expect(b.cache.stats().l1.hits, 'B read it again from its L1').toBe(l1Hits + 1);
  }

  it('users.findByExternalId: an update by id on A reaches B’s L2-filled copy within the bound', async () => {
    const user = await ours.users.create({ external_id: 'coherent-user', profile: { display_name: 'before' } });
    await fillBoth(
      () => ours.users.findByExternalId('coherent-user'),
      () => theirs.users.findByExternalId('coherent-user'),
    );
    await ours.users.update(user._id, { profile: { display_name: 'after' } });
    await waitFor(async () => (await theirs.users.findByExternalId('coherent-user'))?.profile.display_name === 'after', {
      what: 'B sees the update',
      timeoutMS: BUS_BOUND_MS,
    });
  });

  it('messages.findByConversation: an edit by id on A reaches B’s L2-filled page within the bound', async () => {
    const sender = new ObjectId();
    const { conversation } = await ours.conversations.createDirect([sender, new ObjectId()]);
    const message = await ours.messages.create({
      conversation_id: conversation._id,
      sender_id: sender,
      content: { type: 'text', encrypted_data: 'YmVmb3Jl' },
    });
    const page = (repositories: typeof ours) => repositories.messages.findByConversation(conversation._id, { limit: 10 });
    await fillBoth(
      () => page(ours),
      () => page(theirs),
    );
    await ours.messages.edit(message._id, sender, { encrypted_data: 'YWZ0ZXI' });
    await waitFor(async () => (await page(theirs)).items[0]?.content.encrypted_data === 'YWZ0ZXI', {
      what: 'B sees the edit',
      timeoutMS: BUS_BOUND_MS,
    });
  });

  it('conversations.listForUser: a delete by id on A reaches B’s L2-filled list within the bound', async () => {
    const user = new ObjectId();
    const { conversation } = await ours.conversations.createDirect([user, new ObjectId()]);
    const list = (repositories: typeof ours) => repositories.conversations.listForUser(user);
    await fillBoth(
      () => list(ours),
      () => list(theirs),
    );
    expect((await list(theirs)).items.map((item) => item._id)).toEqual([conversation._id]);
    await ours.conversations.delete(conversation._id);
    await waitFor(async () => (await list(theirs)).items.length === 0, { what: 'B sees the delete', timeoutMS: BUS_BOUND_MS });
  });

  it('clients.findByTenantId: an update by id on A reaches B’s L2-filled copy within the bound', async () => {
    const client = await a.data.clients.create({ tenant_id: 'coherent-client', name: 'Before', region: 'eu-west-1' });
    await fillBoth(
      () => a.data.clients.findByTenantId('coherent-client'),
      () => b.data.clients.findByTenantId('coherent-client'),
    );
    await a.data.clients.update(client._id, { name: 'After' });
    await waitFor(async () => (await b.data.clients.findByTenantId('coherent-client'))?.name === 'After', {
      what: 'B sees it',
      timeoutMS: BUS_BOUND_MS,
    });
  });
});

describe('platform collections', () => {
  const a = instance();

  beforeAll(async () => {
    await ready();
  });

  it('an insert into clients drops the cached "no client" answer for its tenant', async () => {
    expect(await a.data.clients.findByTenantId('created-later')).toBeNull();
    await a.data.clients.create({ tenant_id: 'created-later', name: 'Later', region: 'eu-west-1' });
    expect((await a.data.clients.findByTenantId('created-later'))?.name).toBe('Later');
  });
});

describe('a cache hit is admitted for its tenant', () => {
  const tenancy = { directory: { ttlMS: 60_000 } };
  const a = instance({ tenancy });

  beforeAll(async () => {
    await a.data.syncIndexes();
    await ready();
  });

  it('refuses a suspended tenant’s reads served from L1, and another instance’s reads served from L2', async () => {
    await a.data.clients.create({ tenant_id: 'soon-suspended', name: 'S', region: 'eu-west-1' });
    const repositories = a.data.forTenant('soon-suspended');
    const user = await repositories.users.create({ external_id: 'cached', profile: { display_name: 'C' } });
    expect(await repositories.users.findById(user._id)).not.toBeNull();
    expect(await findsDuring(a.client, 'users', () => repositories.users.findById(user._id))).toBe(0); // an L1 hit
    expect(await repositories.users.findByExternalId('cached')).not.toBeNull();

    await a.data.clients.suspend('soon-suspended', 'unpaid');
    a.tenancy?.directory.forget('soon-suspended');
    await expect(repositories.users.findById(user._id)).rejects.toBeInstanceOf(TenantSuspendedError);
    await expect(repositories.users.findByExternalId('cached')).rejects.toBeInstanceOf(TenantSuspendedError);

    // A second instance, whose directory has not seen the tenant: Redis still holds the entries.
    const b = instance({ tenancy });
    await ready();
    const sent = await findsDuring(b.client, 'users', async () => {
      await expect(b.data.forTenant('soon-suspended').users.findById(user._id)).rejects.toBeInstanceOf(TenantSuspendedError);
    });
    expect(sent).toBe(0);
  });

  it('serves an active tenant’s hits as before', async () => {
    await a.data.clients.create({ tenant_id: 'still-active', name: 'A', region: 'eu-west-1' });
    const repositories = a.data.forTenant('still-active');
    const user = await repositories.users.create({ external_id: 'active', profile: { display_name: 'A' } });
    await repositories.users.findById(user._id);
    expect(await findsDuring(a.client, 'users', () => repositories.users.findById(user._id))).toBe(0);
  });
});

describe('document tags are scoped by tenant', () => {
  const prefix = `c${testDatabaseName().slice(-8)}`;
  const a = instance({ tenancy: { requireActiveTenant: false, strategy: { default: 'database', databasePrefix: prefix } } });

  beforeAll(async () => {
    await ready();
  });

  afterAll(async () => {
    for (const tenant of ['tags-one', 'tags-two'])
      await a.data.admin.dropDatabase(tenantDatabaseName(tenant, prefix)).catch(() => undefined);
  });

  it('a write to one tenant’s document leaves another tenant’s entry for the same _id cached', async () => {
    const id = new ObjectId();
    const one = a.data.forTenant('tags-one');
    const two = a.data.forTenant('tags-two');
    await one.users.create({ _id: id, external_id: 'same-id', profile: { display_name: 'one' } });
    await two.users.create({ _id: id, external_id: 'same-id', profile: { display_name: 'two' } });
    expect((await one.users.findById(id))?.profile.display_name).toBe('one');
    expect((await two.users.findById(id))?.profile.display_name).toBe('two');
    expect(await findsDuring(a.client, 'users', () => two.users.findById(id))).toBe(0);

    await one.users.update(id, { profile: { display_name: 'one, updated' } });
    expect((await one.users.findById(id))?.profile.display_name).toBe('one, updated');
    let seen: string | undefined;
    expect(
      await findsDuring(a.client, 'users', async () => {
        seen = (await two.users.findById(id))?.profile.display_name;
      }),
    ).toBe(0);
    expect(seen).toBe('two');

    // ...and the tenant's own write still drops its own entry.
    await two.users.update(id, { profile: { display_name: 'two, updated' } });
    expect((await two.users.findById(id))?.profile.display_name).toBe('two, updated');
  });
});
