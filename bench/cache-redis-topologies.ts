/**
 * The Zipf cache workload of bench/cache-zipf.ts on a standalone Redis and on a 3-primary Redis
 * Cluster (one replica each), side by side in one run: hit rate per tier, L1 and L2 latency,
 * invalidation delivery between two instances (from the writer's local invalidation to the other
 * instance's remote one), and, on the cluster and on Sentinel, the time from killing a primary
 * (SIGKILL) to both instances serving from Redis again. A benchmark, not a test; results in
 * bench-results/cache-redis-topologies.json. Run: pnpm bench:cache:topologies
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Cluster, Redis } from 'ioredis';
import { type CachePlugin, createCache, type RedisClient } from '../packages/cache/src/index.js';
import { createDataClient, createDataLayer, type DataClient, type ObjectId } from '../packages/core/src/index.js';
import { unsafeDatabase } from '../packages/core/src/unsafe.js';
import { startMongo, startRedis, startRedisCluster, startRedisSentinel, waitFor } from '../packages/testing/src/index.js';

const USERS = Number(process.env.USERS ?? 2000);
const READS = Number(process.env.READS ?? 20_000);
const WRITES = Number(process.env.WRITES ?? 500);
const ZIPF_S = Number(process.env.ZIPF_S ?? 1.1);
const out = (line: string) => process.stdout.write(`${line}\n`);

function zipf(n: number, s: number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let rank = 0; rank < n; rank += 1) {
    total += 1 / (rank + 1) ** s;
    cumulative[rank] = total;
  }
  return () => {
    const target = Math.random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((cumulative[middle] ?? 0) < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

const methods = { 'users.findById': { ttlMS: 300_000 }, 'conversations.listForUser': { ttlMS: 300_000 } };
const ms = (histogram: hdr.Histogram, percentile: number) => Number((histogram.getValueAtPercentile(percentile) / 1000).toFixed(3));
const record = (histogram: hdr.Histogram, elapsedMS: number) => histogram.recordValue(Math.max(1, Math.round(elapsedMS * 1000)));

interface Setup {
  label: string;
  connect: () => RedisClient;
}

function ready(redis: RedisClient): boolean {
  if (redis.status !== 'ready') return false;
  if (!(redis instanceof Cluster)) return true;
  const nodes = redis.nodes('master');
  for (const node of nodes) if (node.status === 'wait') node.connect().catch(() => undefined);
  return nodes.every((node) => node.status === 'ready');
}

/** Two instances on `setup`'s Redis: the Zipf reads, then writes for the bus's delivery time. */
async function workload(mongoUri: string, setup: Setup) {
  const database = `bench_topology_${Date.now()}`;
  const dataClients: DataClient[] = [0, 1].map(() => createDataClient({ uri: mongoUri, database }));
  const connections = [setup.connect(), setup.connect()];
  const caches: CachePlugin[] = connections.map((redis) =>
    createCache({ methods, redis, memory: { maxEntries: 500 }, prefix: `${database}:` }),
  );
  const layers = dataClients.map((client, index) => createDataLayer({ client, plugins: [caches[index] as CachePlugin] }));
  try {
    await waitFor(() => connections.every(ready) && caches.every((cache) => cache.cache.ready), { what: 'Redis ready' });
    const seed = layers[0]?.forTenant('acme');
    if (!seed || !layers[0]) throw new Error('no layer');
    await layers[0].syncIndexes();
    const users: ObjectId[] = [];
    for (let batch = 0; batch < USERS / 500; batch += 1) {
      const created = await seed.users.createMany(
        Array.from({ length: 500 }, (_, index) => ({ external_id: `u${batch * 500 + index}`, profile: { display_name: 'User' } })),
      );
      users.push(...created.map((user) => user._id));
    }
    for (let index = 0; index < USERS / 4; index += 1) {
      await seed.conversations.createDirect([users[index] as ObjectId, users[(index * 7 + 1) % USERS] as ObjectId]);
    }
    const pick = zipf(USERS, ZIPF_S);
    const histograms = { l1: hdr.build(), l2: hdr.build(), miss: hdr.build(), delivery: hdr.build() };
    const before = caches.map((cache) => cache.stats());
    for (let read = 0; read < READS; read += 1) {
      const instance = read % 2;
      const cache = caches[instance] as CachePlugin;
      const repositories = layers[instance]?.forTenant('acme');
      if (!repositories) throw new Error('no instance');
      const user = users[pick()] as ObjectId;
      const stats = cache.stats();
      const started = performance.now();
      if (Math.random() < 0.7) await repositories.users.findById(user);
      else await repositories.conversations.listForUser(user, { limit: 20 });
      const elapsed = performance.now() - started;
      const after = cache.stats();
      if (after.l1.hits > stats.l1.hits) record(histograms.l1, elapsed);
      else if (after.l2.hits > stats.l2.hits) record(histograms.l2, elapsed);
      else record(histograms.miss, elapsed);
    }
    const totals = caches.map((cache, index) => {
      const stats = cache.stats();
      const start = before[index] ?? stats;
      return {
        requests: stats.requests - start.requests,
        l1: stats.l1.hits - start.l1.hits,
        l2: stats.l2.hits - start.l2.hits,
        errors: stats.l2.errors - start.l2.errors,
      };
    });
    const requests = totals.reduce((sum, total) => sum + total.requests, 0);
    const l1Hits = totals.reduce((sum, total) => sum + total.l1, 0);
    const l2Hits = totals.reduce((sum, total) => sum + total.l2, 0);

    // Delivery: instance A writes; from A's local invalidation to B's remote one, per write.
    const [a, b] = caches as [CachePlugin, CachePlugin];
    const sentAt = new Map<string, number>();
    const offLocal = a.on('cache:invalidate', (event) => {
      if (event.source === 'local') for (const tag of event.tags) if (tag.startsWith('doc:acme:users:')) sentAt.set(tag, performance.now());
    });
    let delivered = 0;
    const offRemote = b.on('cache:invalidate', (event) => {
      if (event.source !== 'remote') return;
      const tag = event.tags.find((candidate) => sentAt.has(candidate));
      if (tag === undefined) return;
      record(histograms.delivery, performance.now() - (sentAt.get(tag) as number));
      sentAt.delete(tag);
      delivered += 1;
    });
    const writer = layers[0]?.forTenant('acme');
    for (let write = 0; write < WRITES; write += 1) {
      await writer?.users.update(users[write % USERS] as ObjectId, { profile: { display_name: `w${write}` } });
    }
    await waitFor(() => delivered >= WRITES, { what: 'every invalidation delivered', timeoutMS: 30_000 });
    offLocal();
    offRemote();
    return {
      topology: setup.label,
      reads: READS,
      hitRate: { overall: (l1Hits + l2Hits) / requests, l1: l1Hits / requests, l2: l2Hits / requests },
      l2Errors: totals.reduce((sum, total) => sum + total.errors, 0),
      latencyMS: Object.fromEntries(
        Object.entries(histograms).map(([name, histogram]) => [
          name,
          { count: histogram.totalCount, p50: ms(histogram, 50), p99: ms(histogram, 99) },
        ]),
      ),
    };
  } finally {
    for (const cache of caches) await cache.close();
    for (const redis of connections) redis.disconnect();
    await unsafeDatabase(dataClients[0] as DataClient)
      .dropDatabase()
      .catch(() => undefined);
    for (const client of dataClients) await client.close();
  }
}

/**
 * Two instances read a hot set of 50 users; a primary is killed; the time until both have
 * recovered (`cache:recovered`) and served a read from Redis again.
 */
async function killToL2(mongoUri: string, label: string, connect: () => RedisClient, kill: () => Promise<() => Promise<void>>) {
  const database = `bench_kill_${Date.now()}`;
  const dataClients: DataClient[] = [0, 1].map(() => createDataClient({ uri: mongoUri, database }));
  const connections = [connect(), connect()];
  // No L1, so every read asks Redis: the first L2 hit after the kill is the moment it serves again.
  const caches = connections.map((redis) => createCache({ methods, redis, memory: false, prefix: `${database}:` }));
  const layers = dataClients.map((client, index) => createDataLayer({ client, plugins: [caches[index] as CachePlugin] }).forTenant('acme'));
  let stop = false;
  try {
    await waitFor(() => connections.every(ready) && caches.every((cache) => cache.cache.ready), { what: 'Redis ready' });
    const seed = layers[0];
    if (!seed) throw new Error('no layer');
    const users = (
      await seed.users.createMany(Array.from({ length: 50 }, (_, index) => ({ external_id: `k${index}`, profile: { display_name: 'K' } })))
    ).map((user) => user._id);
    const hits: number[][] = [[], []];
    caches.forEach((cache, index) => {
      cache.on('cache:hit', (event) => {
        if (event.tier === 'l2') hits[index]?.push(performance.now());
      });
    });
    const recovered: number[][] = [[], []];
    caches.forEach((cache, index) => {
      cache.on('cache:recovered', () => recovered[index]?.push(performance.now()));
    });
    let errors = 0;
    const loops = layers.map(async (layer) => {
      while (!stop) {
        await layer.users.findById(users[Math.floor(Math.random() * users.length)] as ObjectId).catch(() => {
          errors += 1;
        });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    });
    await waitFor(() => hits.every((list) => list.length > 20), { what: 'L2 hits before the kill' });
    const killedAt = performance.now();
    const restore = await kill();
    const failoverMS = performance.now() - killedAt;
    await waitFor(
      () =>
        [0, 1].every((index) => {
          const back = recovered[index]?.find((at) => at > killedAt);
          return back !== undefined && (hits[index] ?? []).some((at) => at > back);
        }),
      { what: 'both instances serving from L2 again', timeoutMS: 60_000, intervalMS: 5 },
    );
    const backMS = Math.max(
      ...[0, 1].map((index) => {
        const back = recovered[index]?.find((at) => at > killedAt) as number;
        return ((hits[index] ?? []).find((at) => at > back) as number) - killedAt;
      }),
    );
    stop = true;
    await Promise.all(loops);
    await restore();
    return { topology: label, failoverMS: Math.round(failoverMS), killToL2MS: Math.round(backMS), callerErrors: errors };
  } finally {
    stop = true;
    for (const cache of caches) await cache.close();
    for (const redis of connections) redis.disconnect();
    await unsafeDatabase(dataClients[0] as DataClient)
      .dropDatabase()
      .catch(() => undefined);
    for (const client of dataClients) await client.close();
  }
}

const [mongo, standalone, cluster, sentinel] = await Promise.all([
  startMongo(),
  startRedis(),
  startRedisCluster({ masters: 3, replicas: 1 }),
  startRedisSentinel(),
]);
const quiet = <T extends RedisClient>(redis: T): T => {
  redis.on('error', () => undefined);
  return redis;
};
try {
  const machine = `${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}`;
  out(`machine: ${machine}; MongoDB: ${mongo.description}; Redis 7.0: ${standalone.description}; ${cluster.description}`);
  const results = [];
  for (const setup of [
    { label: 'standalone', connect: () => quiet(new Redis(standalone.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })) },
    {
      label: 'cluster (3 primaries)',
      connect: () => quiet(new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } })),
    },
  ]) {
    results.push(await workload(mongo.uri, setup));
  }
  out(
    `\n${READS} reads, Zipf s=${ZIPF_S} over ${USERS} users (70% users.findById, 30% conversations.listForUser), 2 instances, L1 ≤ 500 entries each; ${WRITES} writes:`,
  );
  out('| Redis | hit rate (L1 / L2) | L1 p50 / p99 | L2 p50 / p99 | miss p50 / p99 | invalidation delivery p50 / p99 |');
  out('|---|---|---|---|---|---|');
  for (const result of results) {
    const latency = result.latencyMS as Record<string, { p50: number; p99: number }>;
    const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
    out(
      `| ${result.topology} | ${pct(result.hitRate.overall)} (${pct(result.hitRate.l1)} / ${pct(result.hitRate.l2)}) | ${latency.l1?.p50} / ${latency.l1?.p99} ms | ${latency.l2?.p50} / ${latency.l2?.p99} ms | ${latency.miss?.p50} / ${latency.miss?.p99} ms | ${latency.delivery?.p50} / ${latency.delivery?.p99} ms |`,
    );
  }
  const kills = [];
  const slotNode = async () => {
    const probe = quiet(new Cluster(cluster.nodes));
    try {
      await waitFor(() => probe.status === 'ready', { what: 'probe ready' });
      return await cluster.primaryOf(Number(await probe.cluster('KEYSLOT', '{acme.0}')));
    } finally {
      probe.disconnect();
    }
  };
  kills.push(
    await killToL2(
      mongo.uri,
      'cluster (3 primaries × 1 replica)',
      () =>
        quiet(
          new Cluster(cluster.nodes, {
            enableOfflineQueue: false,
            clusterRetryStrategy: () => 100,
            redisOptions: { maxRetriesPerRequest: 0 },
          }),
        ),
      async () => {
        const port = await slotNode();
        await cluster.killPrimary(port);
        return () => cluster.restartNode(port);
      },
    ),
  );
  kills.push(
    await killToL2(
      mongo.uri,
      'Sentinel (primary, replica, 3 sentinels)',
      () =>
        quiet(
          new Redis({
            sentinels: sentinel.sentinels,
            name: sentinel.name,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            retryStrategy: () => 100,
          }),
        ),
      async () => {
        const { port } = await sentinel.killPrimary();
        return () => sentinel.restartNode(port);
      },
    ),
  );
  out('\nPrimary killed with SIGKILL under reads from 2 instances (no L1, so every read asks Redis):');
  out('| Redis | kill → new primary serving | kill → both instances serving from L2 again | errors seen by callers |');
  out('|---|---|---|---|');
  for (const kill of kills) out(`| ${kill.topology} | ${kill.failoverMS} ms | ${kill.killToL2MS} ms | ${kill.callerErrors} |`);
  mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
  writeFileSync(
    new URL('../bench-results/cache-redis-topologies.json', import.meta.url),
    `${JSON.stringify({ machine, server: mongo.description, workload: { users: USERS, reads: READS, writes: WRITES, zipf: ZIPF_S }, results, kills }, null, 2)}\n`,
  );
} finally {
  await Promise.all([mongo.stop(), standalone.stop(), cluster.stop(), sentinel.stop()]);
}
