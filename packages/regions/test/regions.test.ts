import { createHash } from 'node:crypto';
import {
  BSON,
  ConfigError,
  createDataClient,
  createDataLayer,
  type DataClient,
  type Middleware,
  ObjectId,
  ValidationError,
} from '@caas-db/core';
import { unsafeDatabase, unsafeDriver } from '@caas-db/core/unsafe';
import { type MongoTestServer, startMongo, waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegionalDataLayer, type RegionalDataLayer, ResidencyError, TenantMoveError } from '../src/index.js';

/** The string values of every `tenant_id` field anywhere in a wire command. */
function tenantsIn(value: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) tenantsIn(item, found);
  else if (value && typeof value === 'object' && !(value instanceof ObjectId) && !(value instanceof Date)) {
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'tenant_id' && typeof inner === 'string') found.add(inner);
      else tenantsIn(inner, found);
    }
  }
  return found;
}

/** Per cluster, the tenants its server received commands for (command monitoring of its driver). */
const seen = new Map<string, Set<string>>();
function monitor(name: string, client: DataClient): void {
  const tenants = new Set<string>();
  seen.set(name, tenants);
  // Wire-level monitoring, whatever the client's own setting: the test watches every wire command.
  (unsafeDriver(client) as unknown as { monitorCommands: boolean }).monitorCommands = true;
  unsafeDriver(client).on('commandStarted', (event) => {
    for (const tenant of tenantsIn(event.command)) tenants.add(tenant);
  });
}

/** Count and SHA-256 of a tenant's documents of one collection, read with the raw driver in `_id` order. */
async function digest(client: DataClient, collection: string, tenant: string): Promise<{ count: number; hash: string; ids: string[] }> {
  const documents = await unsafeDatabase(client).collection(collection).find({ tenant_id: tenant }).sort({ _id: 1 }).toArray();
  const hash = createHash('sha256');
  for (const document of documents) hash.update(BSON.EJSON.stringify(document, { relaxed: false })).update('\n');
  return { count: documents.length, hash: hash.digest('hex'), ids: documents.map((document) => String(document._id)) };
}

const servers: MongoTestServer[] = [];
const clients: DataClient[] = [];
let eu: DataClient;
let us: DataClient;
let dedicatedClient: DataClient;
let regional: RegionalDataLayer;

beforeAll(async () => {
  // eu-west-1 is the run's test server (it also holds the directory); us-east-1 and the dedicated
  // cluster are servers of their own, started here.
  const [usServer, dedicatedServer] = await Promise.all([startMongo(), startMongo()]);
  servers.push(usServer, dedicatedServer);
  eu = createTestClient();
  const directoryClient = createTestClient({ database: `${testDatabaseName()}_dir` });
  us = createDataClient({ uri: usServer.uri, database: `${testDatabaseName()}_us` });
  dedicatedClient = createDataClient({ uri: dedicatedServer.uri, database: `${testDatabaseName()}_ded` });
  clients.push(us, dedicatedClient);
  monitor('eu-west-1', eu);
  monitor('us-east-1', us);
  monitor('dedicated:vip', dedicatedClient);
  const directory = createDataLayer({ client: directoryClient });
  await directory.syncIndexes();
  for (const [tenant, region] of [
    ['eu-a', 'eu-west-1'],
    ['eu-b', 'eu-west-1'],
    ['us-a', 'us-east-1'],
    ['vip', 'eu-west-1'],
    ['mover', 'eu-west-1'],
  ] as const) {
    await directory.clients.create({ tenant_id: tenant, name: tenant, region });
  }
  regional = createRegionalDataLayer({
    directory,
    regions: { 'eu-west-1': eu, 'us-east-1': us },
    dedicated: { vip: { client: dedicatedClient, region: 'eu-west-1' } },
    routeCacheMS: 50,
  });
  await regional.syncIndexes();
}, 120_000);

afterAll(async () => {
  for (const client of clients) {
    await unsafeDriver(client)
      .db(client.databaseName)
      .dropDatabase()
      .catch(() => undefined);
    await client.close();
  }
  await Promise.all(servers.map((server) => server.stop()));
});

async function chat(tenant: string, messages: number): Promise<{ conversation: ObjectId; sender: ObjectId }> {
  const repositories = regional.forTenant(tenant);
  const sender = (await repositories.users.create({ external_id: `${tenant}-owner`, profile: { display_name: tenant } }))._id;
  const conversation = (await repositories.conversations.createDirect([sender, new ObjectId()])).conversation._id;
  await Promise.all(
    Array.from({ length: messages }, (_, index) =>
      repositories.messages.create({
        conversation_id: conversation,
        sender_id: sender,
        content: { type: 'text', encrypted_data: `m${index}` },
      }),
    ),
  );
  return { conversation, sender };
}

describe('regional routing', () => {
  it("sends every command of a tenant to its region's (or its dedicated) cluster only, under concurrent load", {
    timeout: 120_000,
  }, async () => {
    await Promise.all([chat('eu-a', 30), chat('eu-b', 30), chat('us-a', 30), chat('vip', 30)]);
    await Promise.all(
      ['eu-a', 'eu-b', 'us-a', 'vip'].flatMap((tenant) =>
        Array.from({ length: 20 }, () => regional.forTenant(tenant).users.findByExternalId(`${tenant}-owner`)),
      ),
    );
    expect(seen.get('eu-west-1')).toEqual(new Set(['eu-a', 'eu-b']));
    expect(seen.get('us-east-1')).toEqual(new Set(['us-a']));
    expect(seen.get('dedicated:vip')).toEqual(new Set(['vip']));
    expect((await regional.clusterOf('vip')).name).toBe('dedicated:vip');
    expect(await regional.forTenant('us-a').messages.count()).toBe(30);
  });

  it("refuses a command of a tenant on another region's cluster before anything is sent", async () => {
    const before = new Set(seen.get('us-east-1'));
    const refused = regional
      .cluster('us-east-1')
      .forTenant('eu-a')
      .users.create({ external_id: 'x', profile: { display_name: 'x' } });
    await expect(refused).rejects.toBeInstanceOf(ResidencyError);
    await expect(refused).rejects.toMatchObject({ code: 'E_RESIDENCY', tenant: 'eu-a', cluster: 'us-east-1', home: 'eu-west-1' });
    await expect(regional.cluster('eu-west-1').forTenant('vip').users.count()).rejects.toMatchObject({ code: 'E_RESIDENCY' });
    expect(seen.get('us-east-1')).toEqual(before);
  });

  it('validates its options and inputs with typed errors', async () => {
    const directory = createDataLayer({ client: eu });
    expect(() => createRegionalDataLayer({ directory, regions: { Europe: eu } })).toThrow(ConfigError);
    expect(() => createRegionalDataLayer({ directory, regions: {} })).toThrow(ConfigError);
    expect(() => createRegionalDataLayer({ directory, regions: { 'eu-west-1': eu }, routeCacheMS: -1 })).toThrow(ConfigError);
    expect(() => regional.forTenant('')).toThrow(ValidationError);
    await expect(regional.moveTenant('eu-a', 'ap-south-1')).rejects.toBeInstanceOf(ConfigError);
    await expect(regional.moveTenant('eu-a', 'eu-west-1')).rejects.toBeInstanceOf(TenantMoveError);
    await expect(regional.moveTenant('vip', 'us-east-1')).rejects.toMatchObject({ code: 'E_TENANT_MOVE' });
    await expect(regional.forTenant('nobody').users.count()).rejects.toMatchObject({ code: 'E_RESIDENCY' });
  });
});

describe('moving a tenant between regions', () => {
  it('loses and duplicates nothing under concurrent writes, serves reads throughout, and resumes after an abort', {
    timeout: 120_000,
  }, async () => {
    const { conversation, sender } = await chat('mover', 100);
    const before = {
      users: await digest(eu, 'users', 'mover'),
      conversations: await digest(eu, 'conversations', 'mover'),
      messages: await digest(eu, 'messages', 'mover'),
    };
    const mover = regional.forTenant('mover');
    const acknowledged: string[] = [];
    const failures: unknown[] = [];
    let writing = true;
    let reads = 0;
    const writer = async (index: number) => {
      for (let n = 0; writing; n += 1) {
        try {
          const message = await mover.messages.create({
            conversation_id: conversation,
            sender_id: sender,
            content: { type: 'text', encrypted_data: `w${index}-${n}` },
          });
          acknowledged.push(String(message._id));
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const reader = async () => {
      while (writing) {
        try {
          expect(await mover.messages.count()).toBeGreaterThanOrEqual(100);
          reads += 1;
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const load = [writer(0), writer(1), writer(2), reader()];
    const otherTenants = Promise.all(Array.from({ length: 30 }, () => regional.forTenant('us-a').users.findByExternalId('us-a-owner')));

    // The first attempt stops in the copy phase; the second resumes from its checkpoints.
    const abort = new AbortController();
    const first = regional.moveTenant('mover', 'us-east-1', {
      batchSize: 25,
      signal: abort.signal,
      onProgress: (progress) => {
        if (progress.collection === 'messages') abort.abort();
      },
    });
    await expect(regional.moveTenant('mover', 'us-east-1')).rejects.toMatchObject({ code: 'E_TENANT_MOVE', phase: 'start' });
    await expect(first).rejects.toMatchObject({ code: 'E_TENANT_MOVE', phase: 'copying' });
    expect((await regional.clusterOf('mover')).name).toBe('eu-west-1');
    const report = await regional.moveTenant('mover', 'us-east-1', { batchSize: 25 });
    writing = false;
    await Promise.all([...load, otherTenants]);

    expect(failures).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(0);
    expect(report).toMatchObject({ from: 'eu-west-1', to: 'us-east-1', resumedFrom: 'copying' });
    expect(report.verified.messages?.count).toBeGreaterThanOrEqual(100);
    expect((await regional.clusterOf('mover')).name).toBe('us-east-1');

    // Nothing lost, nothing duplicated: the target holds exactly the first 100 and every acknowledged write.
    const after = await digest(us, 'messages', 'mover');
    expect(new Set(after.ids).size).toBe(after.ids.length);
    expect(after.ids.sort()).toEqual([...before.messages.ids, ...acknowledged].sort());
    expect(await digest(us, 'users', 'mover')).toEqual(before.users);
    expect((await digest(us, 'conversations', 'mover')).count).toBe(1);
    // The old region keeps nothing of the tenant.
    for (const collection of ['users', 'conversations', 'messages']) expect((await digest(eu, collection, 'mover')).count).toBe(0);
    expect(await mover.messages.count()).toBe(after.count);
    // The other tenants never crossed regions, during the move either.
    expect(seen.get('us-east-1')).toEqual(new Set(['us-a', 'mover']));
    expect([...(seen.get('eu-west-1') ?? [])].sort()).toEqual(['eu-a', 'eu-b', 'mover']);
    expect(seen.get('dedicated:vip')).toEqual(new Set(['vip']));
    // The tenant's commands now reach its new region only.
    seen.get('eu-west-1')?.clear();
    await mover.users.findByExternalId('mover-owner');
    expect(seen.get('eu-west-1')?.has('mover')).toBe(false);
  });
});

describe('a read in flight across the switch of a move', () => {
  it('is re-routed to the new home instead of failing with ResidencyError', { timeout: 120_000 }, async () => {
    const directoryClient = createTestClient({ database: `${testDatabaseName()}_dir2` });
    clients.push(directoryClient);
    const directory = createDataLayer({ client: directoryClient });
    await directory.syncIndexes();
    await directory.clients.create({ tenant_id: 'reader', name: 'reader', region: 'eu-west-1' });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let held = 0;
    // Holds the reader's count on eu-west-1 before the residency check runs (trace is the outermost phase).
    const hold: Middleware = {
      name: 'hold-count',
      phase: 'trace',
      async handle(ctx, next) {
        if (ctx.tenant === 'reader' && ctx.operation === 'users.count') {
          held += 1;
          await gate;
        }
        return next();
      },
    };
    const gated = createRegionalDataLayer({
      directory,
      regions: { 'eu-west-1': eu, 'us-east-1': us },
      routeCacheMS: 50,
      layerOptions: (info) => (info.name === 'eu-west-1' ? { middlewares: [hold] } : {}),
    });
    await gated.syncIndexes();
    const reader = gated.forTenant('reader');
    await reader.users.createMany(
      Array.from({ length: 5 }, (_, index) => ({ external_id: `reader-${index}`, profile: { display_name: `R${index}` } })),
    );
    let pending: Promise<number> | undefined;
    // The read is admitted while the move is fenced (reads go on; the switch does not wait for them).
    await gated.moveTenant('reader', 'us-east-1', {
      onProgress: ({ phase }) => {
        if (phase === 'fenced' && pending === undefined) pending = reader.users.count();
      },
    });
    await waitFor(() => held === 1);
    release();
    expect(await pending).toBe(5);
    expect((await gated.clusterOf('reader')).name).toBe('us-east-1');
  });
});
