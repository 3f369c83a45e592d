import type { Reporter, RunnerTask, RunnerTestFile } from 'vitest/node';
import { TEST_ENVIRONMENT_VARIABLE, type TestEnvironment } from './test-environment.js';

interface Tally {
  passed: number;
  failed: number;
  skipped: string[];
  byCapability: Map<string, number>;
}

function walk(task: RunnerTask, path: string, tally: Tally): void {
  const name = path ? `${path} > ${task.name}` : task.name;
  if (task.type === 'suite') {
    if (task.result?.state === 'fail' && task.tasks.length === 0) tally.failed += 1;
    for (const child of task.tasks) walk(child, name, tally);
    return;
  }
  const state = task.result?.state;
  if (state === 'pass') tally.passed += 1;
  else if (state === 'fail') tally.failed += 1;
  else if (task.mode === 'skip' || task.mode === 'todo' || state === 'skip' || state === 'todo') {
    const reason = task.meta.skipReason ?? '(no reason given: fix the test)';
    tally.skipped.push(`${name}: ${reason}`);
    for (const capability of task.meta.missingCapabilities ?? []) {
      tally.byCapability.set(capability, (tally.byCapability.get(capability) ?? 0) + 1);
    }
  }
}

/**
 * A vitest reporter that ends the run with what served it and what it skipped:
 * the MongoDB and Redis backends and their startup times, every skipped test with its reason,
 * the count of tests each missing capability skipped, and a last line `N passed, N failed, N skipped`.
 * Use it beside vitest's default reporter.
 */
export default class CaasDbSummaryReporter implements Reporter {
  onFinished(files: RunnerTestFile[] = [], errors: unknown[] = []): void {
    const tally: Tally = { passed: 0, failed: 0, skipped: [], byCapability: new Map() };
    for (const file of files) {
      if (file.result?.state === 'fail' && file.tasks.length === 0) tally.failed += 1;
      for (const task of file.tasks) walk(task, file.name, tally);
    }
    tally.failed += errors.length;
    const lines: string[] = ['', 'caas-db test run'];
    const raw = process.env[TEST_ENVIRONMENT_VARIABLE];
    if (raw) {
      const environment = JSON.parse(raw) as TestEnvironment;
      lines.push(`  MongoDB: ${environment.mongo.description}, ready in ${(environment.mongo.startupMS / 1000).toFixed(2)} s`);
      lines.push(`  Redis:   ${environment.redis.description}, ready in ${(environment.redis.startupMS / 1000).toFixed(2)} s`);
      const missing = Object.entries(environment.capabilities)
        .filter(([, value]) => value === false)
        .map(([name]) => `${name} (${tally.byCapability.get(name) ?? 0} skipped)`);
      lines.push(`  Missing capabilities: ${missing.length ? missing.join(', ') : 'none'}`);
    }
    if (tally.skipped.length) {
      lines.push('  Skipped tests:');
      for (const skipped of tally.skipped) lines.push(`    - ${skipped}`);
    }
    const summary = `${tally.passed} passed, ${tally.failed} failed${tally.skipped.length ? `, ${tally.skipped.length} skipped` : ''}`;
    lines.push('', summary);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

// A named export beside the default one keeps the CommonJS build an `exports.default` (a lone
// default export would become `module.exports =`, which the .d.cts cannot describe).
export { CaasDbSummaryReporter };
