import { performance } from 'node:perf_hooks';
import { TestServerError } from '../errors.js';
import type { ServerProcess } from '../process/server-process.js';
import { freePort, launchRedis, redisServerBinary } from './redis-process.js';

/** A Redis server for tests. */
export interface RedisTestServer {
  /** A `redis://` URL for ioredis. */
  url: string;
  backend: 'external' | 'redis-server';
  description: string;
  startupMS: number;
  /**
   * Stops the server, runs `whileDown`, and starts it again on the same port (it comes back
   * empty). Undefined for an external one.
   */
  restart: ((whileDown?: () => unknown) => Promise<void>) | undefined;
  /** Stops the server (a no-op for an external one). */
  stop(): Promise<void>;
}

async function launch(binary: string, port: number): Promise<ServerProcess> {
  return launchRedis(binary, port);
}

/**
 * Starts (or finds) a Redis server for tests: `REDIS_URL` when set (never stopped), else a
 * `redis-server` from PATH on a free loopback port with persistence off.
 *
 * @example
 * ```ts
 * import { startRedis } from '@caas-db/testing';
 *
 * const redis = await startRedis();
 * console.log(redis.url);
 * await redis.stop();
 * ```
 */
export async function startRedis(): Promise<RedisTestServer> {
  const started = performance.now();
  const externalUrl = process.env.REDIS_URL;
  if (externalUrl) {
    return {
      url: externalUrl,
      backend: 'external',
      description: `REDIS_URL (${externalUrl.replace(/\/\/[^@/]*@/, '//***@')})`,
      startupMS: performance.now() - started,
      restart: undefined,
      stop: async () => undefined,
    };
  }
  const binary = redisServerBinary();
  let lastError: unknown;
  // A free port can be taken by someone else before redis binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = await freePort();
    try {
      let server = await launch(binary, port);
      return {
        url: `redis://127.0.0.1:${port}`,
        backend: 'redis-server',
        description: `redis-server on port ${port}`,
        startupMS: performance.now() - started,
        restart: async (whileDown) => {
          await server.stop();
          await whileDown?.();
          server = await launch(binary, port);
        },
        stop: () => server.stop(),
      };
    } catch (error) {
      lastError = error;
    }
  }
  throw new TestServerError('redis-server did not start on any free port', { cause: lastError });
}
