/**
 * Faults on the response path under concurrent load: responses dropped one way (the requests are
 * applied, the replies lost) until callers see unknown outcomes, responses delayed, and connections
 * cut in the middle of a response. The application's client reaches the run's MongoDB through a TCP
 * proxy; the truth is read over a direct connection. See docs/reliability.md.
 */
import { createDataLayer, type DataLayer } from '@caas-db/core';
import { waitFor } from '@caas-db/testing';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cutMidStream,
  delayResponses,
  dropResponses,
  type FaultInjector,
  type FaultRig,
  openFaultRig,
  runScenario,
  runSeed,
  SUITE_WORKLOAD,
  summarize,
  violationReport,
} from './harness.js';

const SCENARIO_TIMEOUT_MS = 150_000;

let rig: FaultRig;

beforeAll(async () => {
  rig = await openFaultRig(testEnvironment().mongo.uri, testDatabaseName(), 'faults-responses');
});

afterAll(async () => {
  await rig?.truth.admin.dropDatabase().catch(() => undefined);
  await rig?.close();
});

async function scenario(name: string, options: { batching?: boolean }, fault: FaultInjector) {
  await waitFor(async () => (await rig.client.health()).ok, { what: 'the client to be healthy', timeoutMS: 60_000, intervalMS: 100 });
  const app: DataLayer = createDataLayer({ client: rig.client, ...(options.batching && { batching: { messages: true } }) });
  const report = await runScenario({
    name,
    seed: runSeed(),
    tenant: `faults-${name}`,
    client: rig.client,
    app,
    truth: rig.truth,
    proxy: rig.proxy,
    size: SUITE_WORKLOAD,
    fault,
  });
  console.info(summarize(report));
  return report;
}

describe('response faults under load: every invariant holds', () => {
  // Regression of the bugs in docs/reliability.md, "Violations found and fixed".
  it(
    'responses dropped one way until callers see unknown outcomes, then delivered again',
    async () => {
      const report = await scenario('drop', {}, dropResponses(3));
      expect(report.faults['drop-responses']).toBe(1);
      expect(report.unknown).toBeGreaterThanOrEqual(3);
      expect(violationReport(report)).toEqual([]);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'responses delayed 200 ms for a third of the load',
    async () => {
      const report = await scenario('delay', {}, delayResponses(200));
      expect(report.faults['delay-responses']).toBe(1);
      expect(violationReport(report)).toEqual([]);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'connections cut in the middle of a response, in four waves (creates batched into insertMany)',
    async () => {
      const report = await scenario('midstream', { batching: true }, cutMidStream(6));
      expect(report.faults['cut-mid-stream']).toBeGreaterThanOrEqual(6);
      expect(report.retries).toBeGreaterThan(0);
      expect(violationReport(report)).toEqual([]);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
