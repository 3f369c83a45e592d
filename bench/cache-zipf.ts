/**
 * The cache under a Zipf-distributed read workload over one tenant's users and conversation lists,
 * served by two instances sharing one Redis (so both tiers are exercised): hit rate per tier, and
 * the latency of L1 hits, L2 hits and uncached reads, printed as a table and written to
 * bench-results/cache-zipf.json. A benchmark, not a test. Run: pnpm bench:cache
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Redis } from 'ioredis';
import { createCache } from '../packages/cache/src/index.js';
import { createDataClient, createDataLayer, type ObjectId } from '../packages/core/src/index.js';
import { unsafeDatabase } from '../packages/core/src/unsafe.js';
import { startMongo, startRedis } from '../packages/testing/src/index.js';

const USERS = Number(process.env.USERS ?? 2000);
const READS = Number(process.env.READS ?? 20_000);
const ZIPF_S = Number(process.env.ZIPF_S ?? 1.1);
const out = (line: string) => process.stdout.write(`${line}\n`);

/** Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1)^s. */
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

const [mongo, redisServer] = await Promise.all([startMongo(), startRedis()]);
const database = `bench_cache_${Date.now()}`;
const clients = [0, 1].map(() => createDataClient({ uri: mongo.uri, database }));
const redis = [0, 1].map(() => new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 }));
const methods = { 'users.findById': { ttlMS: 300_000 }, 'conversations.listForUser': { ttlMS: 300_000 } };
const caches = redis.map((connection) => createCache({ methods, redis: connection, memory: { maxEntries: 500 } }));
const layers = clients.map((client, index) =>
  createDataLayer({ client, plugins: [caches[index] as NonNullable<(typeof caches)[number]>] }),
);
const uncached = createDataLayer({ client: createDataClient({ uri: mongo.uri, database }) });
try {
  out(
    `machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}; MongoDB: ${mongo.description}; Redis: ${redisServer.description}`,
  );
  const [seedLayer] = layers;
  if (!seedLayer) throw new Error('no layer');
  await seedLayer.syncIndexes();
  const acme = seedLayer.forTenant('acme');
  const users: ObjectId[] = [];
  for (let batch = 0; batch < USERS / 500; batch += 1) {
    const created = await acme.users.createMany(
      Array.from({ length: 500 }, (_, index) => ({ external_id: `u${batch * 500 + index}`, profile: { display_name: 'User' } })),
    );
    users.push(...created.map((user) => user._id));
  }
  for (let index = 0; index < USERS / 4; index += 1) {
    await acme.conversations.createDirect([users[index] as ObjectId, users[(index * 7 + 1) % USERS] as ObjectId]);
  }
  const pick = zipf(USERS, ZIPF_S);
  const histograms = { l1: hdr.build(), l2: hdr.build(), uncached: hdr.build(), mongo: hdr.build() };
  const record = (histogram: hdr.Histogram, ms: number) => histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  for (let read = 0; read < READS; read += 1) {
    const instance = read % 2;
    const cache = caches[instance];
    const repositories = layers[instance]?.forTenant('acme');
    if (!cache || !repositories) throw new Error('no instance');
    const user = users[pick()] as ObjectId;
    const before = cache.stats();
    const started = performance.now();
    if (Math.random() < 0.7) await repositories.users.findById(user);
    else await repositories.conversations.listForUser(user, { limit: 20 });
    const elapsed = performance.now() - started;
    const after = cache.stats();
    if (after.l1.hits > before.l1.hits) record(histograms.l1, elapsed);
    else if (after.l2.hits > before.l2.hits) record(histograms.l2, elapsed);
    else record(histograms.uncached, elapsed);
  }
  const baseline = uncached.forTenant('acme');
  for (let read = 0; read < 2000; read += 1) {
    const user = users[pick()] as ObjectId;
    const started = performance.now();
    if (Math.random() < 0.7) await baseline.users.findById(user);
    else await baseline.conversations.listForUser(user, { limit: 20 });
    record(histograms.mongo, performance.now() - started);
  }
  const totals = caches.map((cache) => cache.stats());
  const requests = totals.reduce((sum, stats) => sum + stats.requests, 0);
  const l1Hits = totals.reduce((sum, stats) => sum + stats.l1.hits, 0);
  const l2Hits = totals.reduce((sum, stats) => sum + stats.l2.hits, 0);
  const µs = (histogram: hdr.Histogram, percentile: number) => (histogram.getValueAtPercentile(percentile) / 1000).toFixed(3);
  const result = {
    machine: `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, Node ${process.version}`,
    server: mongo.description,
    workload: {
      users: USERS,
      conversations: USERS / 4,
      reads: READS,
      zipfExponent: ZIPF_S,
      mix: '70% users.findById, 30% conversations.listForUser',
      instances: 2,
      l1MaxEntries: 500,
    },
    hitRate: { overall: (l1Hits + l2Hits) / requests, l1: l1Hits / requests, l2: l2Hits / requests },
    latencyMS: Object.fromEntries(
      Object.entries(histograms).map(([name, histogram]) => [
        name,
        { count: histogram.totalCount, p50: Number(µs(histogram, 50)), p99: Number(µs(histogram, 99)) },
      ]),
    ),
  };
  out(`\n${READS} reads, Zipf s=${ZIPF_S} over ${USERS} users, 2 instances (L1 ≤ 500 entries each) sharing one Redis:`);
  out('| served by | share of reads | p50 | p99 |');
  out('|---|---|---|---|');
  out(`| L1 (in process) | ${((l1Hits / requests) * 100).toFixed(1)}% | ${µs(histograms.l1, 50)} ms | ${µs(histograms.l1, 99)} ms |`);
  out(`| L2 (Redis) | ${((l2Hits / requests) * 100).toFixed(1)}% | ${µs(histograms.l2, 50)} ms | ${µs(histograms.l2, 99)} ms |`);
  out(
    `| miss → MongoDB | ${(((requests - l1Hits - l2Hits) / requests) * 100).toFixed(1)}% | ${µs(histograms.uncached, 50)} ms | ${µs(histograms.uncached, 99)} ms |`,
  );
  out(`| no cache at all (same reads) | — | ${µs(histograms.mongo, 50)} ms | ${µs(histograms.mongo, 99)} ms |`);
  out(`overall hit rate: ${(result.hitRate.overall * 100).toFixed(1)}%`);
  mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('../bench-results/cache-zipf.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const cache of caches) await cache.close();
  for (const connection of redis) connection.disconnect();
  if (clients[0])
    await unsafeDatabase(clients[0])
      .dropDatabase()
      .catch(() => undefined);
  for (const client of clients) await client.close();
  await uncached.client.close();
  await Promise.all([mongo.stop(), redisServer.stop()]);
}
