import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { TestServerError } from '../errors.js';
import { findOnPath } from '../paths.js';
import { type ServerProcess, startServerProcess } from '../process/server-process.js';

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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * redis-server cannot watch its stdin, so a tiny shell runs it and kills it when stdin closes:
 * the test process dying, by any signal, takes the server with it.
 */
const WATCHDOG = 'trap \'kill $child 2>/dev/null\' TERM INT HUP; "$@" & child=$!; cat >/dev/null; kill $child 2>/dev/null; wait $child';

async function launch(binary: string, port: number): Promise<ServerProcess> {
  return startServerProcess({
    label: 'redis-server',
    command: 'sh',
    args: [
      '-c',
      WATCHDOG,
      'sh',
      binary,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
    ],
    readyPattern: /Ready to accept connections/,
    readyTimeoutMS: 20_000,
  });
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
  const binary = findOnPath('redis-server');
  if (!binary) {
    throw new TestServerError(
      'No Redis for tests: set REDIS_URL, or install redis-server ' +
        '(Debian/Ubuntu: apt-get update && apt-get install -y redis-server; macOS: brew install redis).',
    );
  }
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
