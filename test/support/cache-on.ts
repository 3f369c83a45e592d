/**
 * A vitest setup file: runs the repository suites of packages/core/test/model with every cacheable
 * method cached in both tiers (Redis from the test run). A stale read anywhere in those suites
 * fails a test, so this proves the write invalidation covers every write path.
 */
import { createCache } from '@caas-db/cache';
import { testEnvironment, useTestPlugins } from '@caas-db/testing/vitest';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';

const policy = { ttlMS: 60_000, negativeTtlMS: 60_000 };
const connections: Redis[] = [];

useTestPlugins((databaseName) => {
  const redis = new Redis(testEnvironment().redis.url, { maxRetriesPerRequest: 1 });
  connections.push(redis);
  const cache = createCache({
    redis,
    prefix: `${databaseName}:`,
    methods: {
      'users.findById': policy,
      'users.findByExternalId': policy,
      'conversations.findById': policy,
      'conversations.listForUser': policy,
      'messages.findById': policy,
      'messages.findByConversation': policy,
      'files.findById': policy,
      'groups.findById': policy,
      'clients.findByTenantId': policy,
      'clients.findById': policy,
      'api_keys.findById': policy,
    },
  });
  afterAll(async () => {
    await cache.close();
  });
  return { plugins: [cache] };
});

afterAll(async () => {
  for (const redis of connections) redis.disconnect();
});
