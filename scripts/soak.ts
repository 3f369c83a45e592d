/**
 * The soak: the fault suite's workload and invariants (test/faults/harness.ts), round after round
 * until at least SOAK_OPS public API calls (default 50,000) were made, with one fault per round on a
 * fixed rotation: responses dropped one way, responses delayed, connections cut mid-response, the
 * network cut, MongoDB restarted, Redis restarted (cache on). Creates are batched every other
 * round. Starts and stops its own MongoDB and Redis. Prints one line per round, then the calls, the
 * faults injected by kind and the violations, and exits with 1 when there is any.
 *
 * Run: pnpm soak   (SOAK_OPS=100000 pnpm soak; CAAS_DB_FAULT_SEED=42 pnpm soak to repeat a workload)
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createDataLayer } from '../packages/core/src/index.js';
import { startMongo, startRedis } from '../packages/testing/src/index.js';
import {
  cutAndRestore,
  cutMidStream,
  delayResponses,
  dropResponses,
  type FaultInjector,
  type FaultRig,
  openFaultRig,
  restartMongo,
  runRedisRestartScenario,
  runScenario,
  runSeed,
  type ScenarioReport,
  SUITE_WORKLOAD,
  summarize,
  violationKind,
} from '../test/faults/harness.js';

const TARGET = Number(process.env.SOAK_OPS ?? 50_000);
const out = (line: string) => process.stdout.write(`${line}\n`);

type Kind = 'drop' | 'delay' | 'midstream' | 'cut' | 'mongo-restart' | 'redis-restart';
const ROTATION: Kind[] = ['drop', 'delay', 'midstream', 'cut', 'mongo-restart', 'redis-restart'];

async function main(): Promise<number> {
  const started = performance.now();
  const seed = runSeed();
  const [mongo, redis] = await Promise.all([startMongo(), startRedis()]);
  out(`soak: ${TARGET} calls at least, seed ${seed}, ${cpus().length} CPUs`);
  out(`  MongoDB: ${mongo.description}; Redis: ${redis.description}`);
  const rotation = ROTATION.filter(
    (kind) => (kind !== 'mongo-restart' || mongo.restart !== undefined) && (kind !== 'redis-restart' || redis.restart !== undefined),
  );
  const faults: Record<string, number> = {};
  const violations: string[] = [];
  let calls = 0;
  let rejected = 0;
  let unknown = 0;
  let resends = 0;
  let round = 0;
  try {
    while (calls < TARGET) {
      const kind = rotation[round % rotation.length] as Kind;
      const batching = round % 2 === 1;
      const roundSeed = seed + round;
      const rig: FaultRig = await openFaultRig(mongo.uri, `soak_${round}`, `soak-${kind}`);
      let report: ScenarioReport;
      try {
        const common = { name: `${kind}${batching ? '+batching' : ''}`, seed: roundSeed, tenant: `soak-${round}`, faults };
        if (kind === 'redis-restart') {
          report = await runRedisRestartScenario({ ...common, rig, redis, size: SUITE_WORKLOAD, prefix: `soak_${round}:` });
        } else {
          const fault: FaultInjector = {
            drop: dropResponses(3),
            delay: delayResponses(200),
            midstream: cutMidStream(6),
            cut: cutAndRestore(5),
            'mongo-restart': restartMongo(mongo, rig.truth, 5),
          }[kind];
          report = await runScenario({
            ...common,
            client: rig.client,
            app: createDataLayer({ client: rig.client, ...(batching && { batching: { messages: true } }) }),
            truth: rig.truth,
            proxy: rig.proxy,
            size: SUITE_WORKLOAD,
            fault,
          });
        }
      } finally {
        await rig.truth.admin.dropDatabase().catch(() => undefined);
        await rig.close();
      }
      out(`  round ${round + 1}: ${summarize(report).replace('[faults] ', '')}`);
      calls += report.calls;
      rejected += report.rejected;
      unknown += report.unknown;
      resends += report.resends;
      violations.push(...report.violations.map((violation) => `round ${round + 1} ${report.name} (seed ${report.seed}): ${violation}`));
      round += 1;
    }
  } finally {
    await Promise.allSettled([mongo.stop(), redis.stop()]);
  }
  const seconds = (performance.now() - started) / 1000;
  out('');
  out(`operations: ${calls} public API calls in ${round} rounds, ${seconds.toFixed(0)} s (${(calls / seconds).toFixed(0)} calls/s)`);
  out(`  rejected: ${rejected} (${unknown} with outcome 'unknown', ${resends} re-sent with the same _id)`);
  out(
    `faults injected: ${Object.entries(faults)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(', ')}`,
  );
  out(`violations: ${violations.length}`);
  const byKind = new Map<string, number>();
  for (const violation of violations) byKind.set(violationKind(violation), (byKind.get(violationKind(violation)) ?? 0) + 1);
  for (const [kind, count] of byKind) out(`  ${count} × ${kind}`);
  for (const violation of violations.slice(0, 20)) out(`  ${violation}`);
  if (violations.length > 20) out(`  ... and ${violations.length - 20} more`);
  return violations.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
