import type { TestProject } from 'vitest/node';
import { startRedisCluster } from './start-redis-cluster.js';
import { startRedisSentinel } from './start-redis-sentinel.js';

/** Which Redis a vitest project's suites run on, and how to reach it. */
export type RedisTopology =
  | { kind: 'standalone' }
  | { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; description: string }
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; name: string; description: string };

/** The project setting (`test.env`) that picks the topology: `cluster` or `sentinel`. */
export const REDIS_TOPOLOGY_VARIABLE = 'CAAS_DB_TEST_REDIS_TOPOLOGY';

declare module 'vitest' {
  export interface ProvidedContext {
    caasDbRedisTopology: RedisTopology;
  }
}

/**
 * A vitest global setup for a project that runs suites on Redis Cluster or Sentinel: starts the
 * topology named by the project's `CAAS_DB_TEST_REDIS_TOPOLOGY` once for the project's run (a
 * 3-primary cluster, or a primary, a replica and three sentinels), provides how to reach it as
 * `caasDbRedisTopology`, and stops it when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const kind = project.config.env?.[REDIS_TOPOLOGY_VARIABLE];
  if (kind === 'cluster') {
    const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    project.provide('caasDbRedisTopology', { kind, nodes: cluster.nodes, description: cluster.description });
    return () => cluster.stop();
  }
  if (kind === 'sentinel') {
    const group = await startRedisSentinel();
    project.provide('caasDbRedisTopology', { kind, sentinels: group.sentinels, name: group.name, description: group.description });
    return () => group.stop();
  }
  project.provide('caasDbRedisTopology', { kind: 'standalone' });
  return async () => undefined;
}
