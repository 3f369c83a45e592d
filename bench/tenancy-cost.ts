/**
 * Measures what the two tenancy strategies cost on the server at hand (the embedded test server
 * unless MONGODB_URI is set): provisioning time, collections and indexes per tenant, a history read
 * in each strategy, connections used, and the CPU cost of scoping one command.
 * Run: pnpm bench:tenancy
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createDataClient, createDataLayer, ObjectId } from '../packages/core/src/index.js';
import { unsafeDriver } from '../packages/core/src/unsafe.js';
import { createTenancy, scopeCommand } from '../packages/tenancy/src/index.js';
import { startMongo } from '../packages/testing/src/index.js';

const TENANTS = Number(process.env.TENANTS ?? 50);
const MESSAGES_PER_TENANT = 200;
const mongo = await startMongo();
const out = (line: string) => process.stdout.write(`${line}\n`);
out(`machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}; server: ${mongo.description}`);

async function measure(strategy: 'shared' | 'database') {
  const client = createDataClient({ uri: mongo.uri, database: `bench_${strategy}_${Date.now()}`, monitoring: { wire: true } });
  const tenancy = createTenancy({
    requireActiveTenant: false,
    audit: 'enforce',
    strategy: strategy === 'database' ? { default: 'database', databasePrefix: `b${Date.now() % 100000}` } : {},
  });
  // The messages reference made-up conversations: the reference check is off.
  const data = createDataLayer({ client, integrity: { messages: false }, plugins: [tenancy] });
  const tenants = Array.from({ length: TENANTS }, (_, index) => `tenant-${index}`);

  const provisionStarted = performance.now();
  await data.syncIndexes();
  if (strategy === 'database') for (const tenant of tenants) await tenancy.provisionTenant(tenant);
  const provisionMS = performance.now() - provisionStarted;

  const { databases } = await unsafeDriver(client).db('admin').admin().listDatabases({ nameOnly: true });
  const tenantPrefix = `${(await tenancy.databaseOf(tenants[0] ?? 'x')).split('_')[0]}_`;
  const ours = databases
    .map((database) => database.name)
    .filter((name) => name === client.databaseName || (strategy === 'database' && name.startsWith(tenantPrefix)));
  let collections = 0;
  let indexes = 0;
  for (const name of new Set(ours)) {
    for (const collection of await unsafeDriver(client).db(name).listCollections({}, { nameOnly: true }).toArray()) {
      collections += 1;
      indexes += (await unsafeDriver(client).db(name).collection(collection.name).listIndexes().toArray()).length;
    }
  }

  const conversations = new Map<string, ObjectId>();
  for (const tenant of tenants) {
    const repositories = data.forTenant(tenant);
    const conversation = new ObjectId();
    conversations.set(tenant, conversation);
    await repositories.messages.createMany(
      Array.from({ length: MESSAGES_PER_TENANT }, () => ({
        conversation_id: conversation,
        sender_id: conversation,
        content: { type: 'text' as const, encrypted_data: 'eA' },
      })),
    );
  }
  const timings: number[] = [];
  for (let round = 0; round < 5; round += 1) {
    for (const tenant of tenants) {
      const started = performance.now();
      await data.forTenant(tenant).messages.findByConversation(conversations.get(tenant) ?? new ObjectId(), { limit: 50 });
      timings.push(performance.now() - started);
    }
  }
  timings.sort((a, b) => a - b);
  const health = await client.health();
  const connections = Object.values(health.connections).reduce((sum, size) => sum + size, 0);
  for (const name of new Set(ours)) await unsafeDriver(client).db(name).dropDatabase();
  await client.close();
  return {
    strategy,
    provisionMS,
    databases: new Set(ours).size,
    collections,
    indexes,
    p50: timings[Math.floor(timings.length / 2)] ?? 0,
    p99: timings[Math.floor(timings.length * 0.99)] ?? 0,
    connections,
  };
}

const results = [await measure('shared'), await measure('database')];
out(`\n${TENANTS} tenants, ${MESSAGES_PER_TENANT} messages each, first history page (50) read 5 times per tenant:`);
out('| strategy | provisioning | databases | collections | indexes | history page p50 | p99 | connections |');
out('|---|---|---|---|---|---|---|---|');
for (const result of results) {
  out(
    `| ${result.strategy} | ${(result.provisionMS / 1000).toFixed(2)} s | ${result.databases} | ${result.collections} | ${result.indexes} | ${result.p50.toFixed(2)} ms | ${result.p99.toFixed(2)} ms | ${result.connections} |`,
  );
}

const command = {
  kind: 'aggregate' as const,
  pipeline: [
    { $match: { conversation_id: new ObjectId() } },
    { $lookup: { from: 'users', localField: 'sender_id', foreignField: '_id', as: 'sender' } },
    { $sort: { _id: -1 } },
    { $limit: 50 },
  ],
  options: {},
};
const iterations = 200_000;
const scope = {
  collection: { name: 'messages', tenantOwned: true },
  tenant: 'acme',
  isTenantOwned: () => true,
  lookupLocalFieldWithPipeline: true,
  onUnbound: () => undefined,
};
for (let index = 0; index < 10_000; index += 1) scopeCommand(command, scope);
const cpu = process.cpuUsage();
for (let index = 0; index < iterations; index += 1) scopeCommand(command, scope);
const used = process.cpuUsage(cpu);
out(`\nscoping a 4-stage pipeline with a $lookup: ${((used.user + used.system) / iterations).toFixed(2)} µs CPU per command`);
await mongo.stop();
