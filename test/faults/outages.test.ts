/**
 * Outages under concurrent load: the network cut and restored, MongoDB stopped and started again,
 * and Redis stopped and started again with the cache on in two instances. Each test starts the
 * servers it restarts and stops them. See docs/reliability.md.
 */
import { createDataLayer } from '@caas-db/core';
import { startMongo, startRedis } from '@caas-db/testing';
import { skipTest, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import {
  cutAndRestore,
  openFaultRig,
  restartMongo,
  runRedisRestartScenario,
  runScenario,
  runSeed,
  SUITE_WORKLOAD,
  summarize,
  violationReport,
} from './harness.js';

const SCENARIO_TIMEOUT_MS = 150_000;

describe('outages under load: every invariant holds', () => {
  // Regression of the bugs in docs/reliability.md, "Violations found and fixed".
  it(
    'the network cut until calls are rejected, then restored, twice (creates batched into insertMany)',
    async () => {
      const rig = await openFaultRig(testEnvironment().mongo.uri, testDatabaseName(), 'faults-cut');
      try {
        const report = await runScenario({
          name: 'cut',
          seed: runSeed(),
          tenant: 'faults-cut',
          client: rig.client,
          app: createDataLayer({ client: rig.client, batching: { messages: true } }),
          truth: rig.truth,
          proxy: rig.proxy,
          size: SUITE_WORKLOAD,
          fault: cutAndRestore(5),
        });
        console.info(summarize(report));
        expect(report.faults['proxy-cut']).toBe(2);
        expect(report.rejected).toBeGreaterThanOrEqual(10);
        expect(violationReport(report)).toEqual([]);
      } finally {
        await rig.truth.admin.dropDatabase().catch(() => undefined);
        await rig.close();
      }
    },
    SCENARIO_TIMEOUT_MS,
  );

  // Regression of bugs 2 and 3 in docs/reliability.md, "Violations found and fixed".
  it(
    'MongoDB stopped and started again until calls are rejected, the clients retrying meanwhile',
    async (context) => {
      const { backend } = testEnvironment().mongo;
      if (backend === 'external') return skipTest(context, 'an external MONGODB_URI server cannot be restarted by the test');
      const own = await startMongo({ backend });
      try {
        const rig = await openFaultRig(own.uri, 'faults_restart', 'faults-restart');
        try {
          const report = await runScenario({
            name: 'mongo-restart',
            seed: runSeed(),
            tenant: 'faults-mongo-restart',
            client: rig.client,
            app: createDataLayer({ client: rig.client }),
            truth: rig.truth,
            proxy: rig.proxy,
            size: SUITE_WORKLOAD,
            fault: restartMongo(own, rig.truth, 5),
          });
          console.info(summarize(report));
          expect(report.faults['mongo-restart']).toBe(1);
          expect(report.rejected).toBeGreaterThanOrEqual(5);
          expect(violationReport(report)).toEqual([]);
        } finally {
          await rig.close();
        }
      } finally {
        await own.stop();
      }
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'Redis stopped and started again with the cache on in two instances: no call fails, no cached read stays stale',
    async (context) => {
      const redis = await startRedis();
      try {
        if (!redis.restart) return skipTest(context, 'an external REDIS_URL server cannot be restarted by the test');
        const rig = await openFaultRig(testEnvironment().mongo.uri, testDatabaseName(), 'faults-redis-a');
        try {
          const report = await runRedisRestartScenario({
            name: 'redis-restart',
            seed: runSeed(),
            tenant: 'faults-redis-restart',
            rig,
            redis,
            size: SUITE_WORKLOAD,
            prefix: `${testDatabaseName()}:`,
          });
          console.info(summarize(report));
          expect(report.faults['redis-restart']).toBe(1);
          expect(report.rejected).toBe(0);
          expect(violationReport(report)).toEqual([]);
        } finally {
          await rig.truth.admin.dropDatabase().catch(() => undefined);
          await rig.close();
        }
      } finally {
        await redis.stop();
      }
    },
    SCENARIO_TIMEOUT_MS,
  );
});
