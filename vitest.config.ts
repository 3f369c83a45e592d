import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; the smoke tests in test/ load the built packages by name.
    alias: [
      { find: /^@caas-db\/testing\/vitest$/, replacement: source('./packages/testing/src/vitest/index.ts') },
      { find: /^@caas-db\/core\/unsafe$/, replacement: source('./packages/core/src/unsafe.ts') },
      // Every package under packages/<name> is @caas-db/<name>.
      { find: /^@caas-db\/([a-z-]+)$/, replacement: source('./packages/$1/src/index.ts') },
    ],
  },
  test: {
    globalSetup: ['./packages/testing/src/vitest/global-setup.ts'],
    reporters: ['default', './packages/testing/src/vitest/reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    projects: [
      {
        extends: true,
        // The failover soak starts Sentinel and a cluster of its own: `pnpm test:failover` runs it.
        test: {
          name: 'caas-db',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'packages/cache/test/failover.test.ts'],
        },
      },
      // The repository suites again, with tenancy on and the auditor enforcing, under each strategy.
      ...(['shared', 'database'] as const).map((strategy) => ({
        extends: true as const,
        test: {
          name: `tenancy-${strategy}`,
          include: ['packages/core/test/model/**/*.test.ts'],
          env: { CAAS_DB_TEST_TENANCY: strategy },
          setupFiles: ['./test/support/tenancy-strategy.ts'],
        },
      })),
      // The repository suites again with the cache on: a stale read fails them.
      {
        extends: true as const,
        test: { name: 'cache-on', include: ['packages/core/test/model/**/*.test.ts'], setupFiles: ['./test/support/cache-on.ts'] },
      },
      // The cache suites (and the Redis rate limiter's) again on Redis Cluster and on Sentinel,
      // each started once for its project by the topology setup. The failover tests start their own.
      ...(['cluster', 'sentinel'] as const).map((topology) => ({
        extends: true as const,
        test: {
          name: `cache-${topology}`,
          include: ['packages/cache/test/**/*.test.ts', 'packages/tenancy/test/redis-rate-limit.test.ts'],
          exclude: ['packages/cache/test/failover.test.ts'],
          globalSetup: ['./packages/testing/src/redis/topology-global-setup.ts'],
          env: { CAAS_DB_TEST_REDIS_TOPOLOGY: topology },
        },
      })),
      // Only when asked for (pnpm test:failover): primaries killed with SIGKILL and slots moved under load.
      ...(process.env.CAAS_DB_FAILOVER
        ? [{ extends: true as const, test: { name: 'cache-failover', include: ['packages/cache/test/failover.test.ts'] } }]
        : []),
    ],
  },
});
