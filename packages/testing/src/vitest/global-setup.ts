import { createDataClient } from '@caas-db/core';
import type { TestProject } from 'vitest/node';
import { startMongo } from '../mongo/start-mongo.js';
import { startRedis } from '../redis/start-redis.js';
import { TEST_ENVIRONMENT_VARIABLE, type TestEnvironment } from './test-environment.js';

/**
 * A vitest global setup: starts MongoDB and Redis once per run, probes MongoDB's capabilities,
 * hands all three to test files (`testEnvironment()`), and stops both servers when the run ends,
 * failed or not.
 *
 * @example
 * ```ts
 * // vitest.config.ts
 * export default defineConfig({ test: { globalSetup: ['@caas-db/testing/global-setup'] } });
 * ```
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [mongo, redis] = await Promise.all([startMongo(), startRedis()]);
  const stopAll = async () => {
    await Promise.allSettled([mongo.stop(), redis.stop()]);
  };
  try {
    const client = createDataClient({ uri: mongo.uri, database: 'caas_test_probe', timeouts: { serverSelectionMS: 10_000 } });
    const capabilities = await client.capabilities().finally(() => client.close());
    const environment: TestEnvironment = {
      mongo: { uri: mongo.uri, backend: mongo.backend, description: mongo.description, startupMS: mongo.startupMS },
      redis: { url: redis.url, backend: redis.backend, description: redis.description, startupMS: redis.startupMS },
      capabilities,
    };
    process.env[TEST_ENVIRONMENT_VARIABLE] = JSON.stringify(environment);
    project.provide('caasDb', environment);
  } catch (error) {
    await stopAll();
    throw error;
  }
  return stopAll;
}

// A named export beside the default one keeps the CommonJS build an `exports.default` (a lone
// default export would become `module.exports =`, which the .d.cts cannot describe).
export { setup };
