/**
 * pnpm bench:tenant-cap — does a per-tenant concurrency cap protect the other tenants of a shared
 * pool from one tenant flooding it? Four quiet tenants read users by external id, one at a time
 * each; their latency is measured alone, then with a fifth tenant keeping 200 list reads in flight,
 * without a cap and with `tenantConcurrencyCap` at several caps. The quiet reads are also sent
 * through the raw driver in the same run, for scale. Not part of `pnpm test`.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createDataClient, createDataLayer, type DataLayer, type Middleware } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { startMongo } from '@caas-db/testing';
import { tenantConcurrencyCap } from '../src/index.js';

const QUIET = ['quiet-1', 'quiet-2', 'quiet-3', 'quiet-4'];
const USERS = 300;
const QUIET_OPS = Number(process.env.QUIET_OPS ?? 150);
/** Without a cap each quiet read waits behind the flood in the pool's queue (seconds each): fewer samples there. */
const UNCAPPED_OPS = Number(process.env.UNCAPPED_OPS ?? 15);
const FLOOD = 200;
const POOL = 20;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function quietRun(
  read: (tenant: string, id: string) => Promise<unknown>,
  ops = QUIET_OPS,
): Promise<{ p50: number; p99: number; ops: number }> {
  const latencies: number[] = [];
  await Promise.all(
    QUIET.map(async (tenant) => {
      for (let n = 0; n < ops; n += 1) {
        const started = performance.now();
        await read(tenant, `u${(n * 7919) % USERS}`);
        latencies.push(performance.now() - started);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), ops: latencies.length };
}

async function withFlood<T>(data: DataLayer, run: () => Promise<T>): Promise<{ result: T; floodOps: number; refused: number }> {
  let flooding = true;
  let floodOps = 0;
  let refused = 0;
  const flood = data.forTenant('flood');
  const loops = Array.from({ length: FLOOD }, async () => {
    while (flooding) {
      try {
        await flood.users.findMany({}, { limit: 50 });
        floodOps += 1;
      } catch {
        refused += 1;
        // A refused client backs off before trying again (and lets I/O run: a refusal settles at once).
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  });
  const progress = setInterval(() => log(`  flood ops ${floodOps}, refused ${refused}`), 5000);
  const result = await run();
  flooding = false;
  await Promise.all(loops);
  clearInterval(progress);
  return { result, floodOps, refused };
}

const log = (message: string) => process.stderr.write(`${message}\n`);
const server = await startMongo();
log(`server: ${server.description}`);
const client = createDataClient({ uri: server.uri, database: 'caas_bench_tenant_cap', pool: { maxSize: POOL } });
try {
  const seed = createDataLayer({ client });
  await seed.syncIndexes();
  for (const tenant of [...QUIET, 'flood']) {
    await seed
      .forTenant(tenant)
      .users.createMany(
        Array.from({ length: USERS }, (_, index) => ({ external_id: `u${index}`, profile: { display_name: `User ${index}` } })),
      );
  }
  const layer = (middlewares: Middleware[]) => createDataLayer({ client, middlewares });
  const plain = layer([]);
  const libraryRead = (data: DataLayer) => (tenant: string, id: string) => data.forTenant(tenant).users.findByExternalId(id);
  const users = unsafeDatabase(client).collection('users');
  const driverRead = (tenant: string, id: string) => users.findOne({ tenant_id: tenant, external_id: id, deleted_at: null });

  log('seeded');
  // Warm-up (JIT, connections, the server's caches).
  await quietRun(libraryRead(plain));
  const rows: string[] = [];
  const row = (
    label: string,
    quiet: { p50: number; p99: number; ops: number },
    flood?: { floodOps: number; refused: number },
    seconds?: number,
  ) =>
    rows.push(
      `| ${label} | ${quiet.p50.toFixed(2)} | ${quiet.p99.toFixed(2)} | ${flood ? `${Math.round(flood.floodOps / (seconds ?? 1))}` : '—'} | ${flood ? flood.refused : '—'} |`,
    );
  log('warmed up');
  const driverAlone = await quietRun(driverRead);
  row('raw driver, no flood', driverAlone);
  const alone = await quietRun(libraryRead(plain));
  row('caas-db, no flood (baseline)', alone);
  const timed = async (data: DataLayer, ops = QUIET_OPS) => {
    const started = performance.now();
    const outcome = await withFlood(data, () => quietRun(libraryRead(data), ops));
    return { ...outcome, seconds: (performance.now() - started) / 1000 };
  };
  log('baseline done');
  const uncapped = await timed(plain, UNCAPPED_OPS);
  log('uncapped done');
  row(`caas-db, flood of ${FLOOD}, no cap (${UNCAPPED_OPS * QUIET.length} samples)`, uncapped.result, uncapped, uncapped.seconds);
  const capped: Array<{ cap: number; p99: number }> = [];
  for (const cap of [8, 4, 2]) {
    const outcome = await timed(layer([tenantConcurrencyCap({ perTenant: cap })]));
    row(`caas-db, flood of ${FLOOD}, cap ${cap} per tenant (queue)`, outcome.result, outcome, outcome.seconds);
    capped.push({ cap, p99: outcome.result.p99 });
    log(`cap ${cap} done`);
  }
  const failFast = await timed(layer([tenantConcurrencyCap({ perTenant: 4, mode: 'fail-fast' })]));
  row(`caas-db, flood of ${FLOOD}, cap 4 per tenant (fail-fast)`, failFast.result, failFast, failFast.seconds);

  console.log(`\nMachine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, ${server.description}`);
  console.log(
    `Pool: maxSize ${POOL}; ${QUIET.length} quiet tenants × ${QUIET_OPS} sequential findByExternalId (no-cap run: × ${UNCAPPED_OPS}); flood: ${FLOOD} concurrent users.findMany (50 per page)\n`,
  );
  console.log('| run | quiet p50 ms | quiet p99 ms | flood ops/s | flood refused |');
  console.log('|---|---|---|---|---|');
  for (const line of rows) console.log(line);
  console.log(
    `\nquiet p99 vs baseline: no cap ${(uncapped.result.p99 / alone.p99).toFixed(1)}×; ${capped.map(({ cap, p99 }) => `cap ${cap} ${(p99 / alone.p99).toFixed(1)}×`).join('; ')}; fail-fast cap 4 ${(failFast.result.p99 / alone.p99).toFixed(1)}×`,
  );
} finally {
  await unsafeDatabase(client)
    .dropDatabase()
    .catch(() => undefined);
  await client.close();
  await server.stop();
}
