import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestServerError } from '../errors.js';
import type { ServerProcess } from '../process/server-process.js';
import { waitFor } from '../wait-for.js';
import { freePort, infoField, killRedisOn, launchRedis, redisCli, redisServerBinary } from './redis-process.js';
import type { RedisNodeAddress } from './start-redis-cluster.js';

/** Options of {@link startRedisSentinel}. */
export interface StartRedisSentinelOptions {
  /** The name the sentinels monitor the primary under. @default 'caas' */
  name?: string;
  /** How long the primary may be unreachable before the sentinels agree it is down. @default 1000 */
  downAfterMS?: number;
}

/** A primary, a replica and three sentinels on local ports, for tests. */
export interface RedisTestSentinel {
  /** The monitored name: `new Redis({ sentinels, name })`. */
  name: string;
  /** The three sentinels. */
  sentinels: RedisNodeAddress[];
  description: string;
  startupMS: number;
  /** The port of the current primary, as the sentinels report it. */
  primaryPort(): Promise<number>;
  /**
   * Kills the current primary with SIGKILL (a server this fixture started) and resolves once the
   * sentinels report the replica as primary and it accepts writes.
   * @returns the killed port and milliseconds from the kill until the new primary took writes.
   */
  killPrimary(): Promise<{ port: number; failoverMS: number }>;
  /** Starts a killed node again on its port: the sentinels make it a replica of the new primary. */
  restartNode(port: number): Promise<void>;
  /** Stops the sentinels and both servers and deletes their files. */
  stop(): Promise<void>;
}

/**
 * Starts Redis Sentinel on loopback ports: a primary, one replica and three sentinels (quorum 2),
 * persistence off, every process under the same watchdog as {@link startRedis} (the test process
 * dying stops them). Needs redis-server 7 (run with `--sentinel`) and redis-cli.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { startRedisSentinel } from '@caas-db/testing';
 *
 * const group = await startRedisSentinel();
 * const redis = new Redis({ sentinels: group.sentinels, name: group.name });
 * // ...
 * await group.stop();
 * ```
 */
export async function startRedisSentinel(options: StartRedisSentinelOptions = {}): Promise<RedisTestSentinel> {
  const started = performance.now();
  const name = options.name ?? 'caas';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new TestServerError('startRedisSentinel: name must be 1-64 letters, digits, _ or -');
  const binary = redisServerBinary();
  const folder = mkdtempSync(join(tmpdir(), 'caas-redis-sentinel-'));
  const servers = new Map<number, ServerProcess>();
  const sentinelProcesses: ServerProcess[] = [];
  const stop = async () => {
    await Promise.allSettled(sentinelProcesses.map((sentinel) => sentinel.stop()));
    await Promise.allSettled([...servers.values()].map((server) => server.stop()));
    servers.clear();
    rmSync(folder, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    while (ports.length < 5) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const [primary, replica, ...sentinelPorts] = ports as [number, number, number, number, number];
    // Their own folder: a replica's full sync writes an RDB file there even with saving off.
    const dataArgs = ['--dir', folder];
    servers.set(primary, await launchRedis(binary, primary, dataArgs));
    servers.set(replica, await launchRedis(binary, replica, [...dataArgs, '--replicaof', '127.0.0.1', String(primary)]));
    await waitFor(async () => (await infoField(replica, 'replication', 'master_link_status').catch(() => undefined)) === 'up', {
      what: 'the replica to sync',
      timeoutMS: 20_000,
      intervalMS: 50,
    });
    for (const port of sentinelPorts) {
      const file = join(folder, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `sentinel monitor ${name} 127.0.0.1 ${primary} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMS ?? 1000}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      sentinelProcesses.push(await launchRedis(binary, port, [file, '--sentinel', '--dir', folder], /\+monitor master/));
    }
    // Sentinels find the replica and each other through the primary: wait until all of them have.
    await waitFor(
      async () => {
        for (const port of sentinelPorts) {
          const replicas = await redisCli(['-p', String(port), 'SENTINEL', 'REPLICAS', name], 5000).catch(() => '');
          const peers = await redisCli(['-p', String(port), 'SENTINEL', 'SENTINELS', name], 5000).catch(() => '');
          if (
            !replicas.includes(String(replica)) ||
            sentinelPorts.filter((other) => other !== port && peers.includes(String(other))).length < 2
          )
            return false;
        }
        return true;
      },
      { what: 'the sentinels to discover the replica and each other', timeoutMS: 30_000, intervalMS: 100 },
    );
    const primaryPort = async () => {
      for (const port of sentinelPorts) {
        const answer = await redisCli(['-p', String(port), 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name], 5000).catch(() => '');
        const reported = Number(answer.split('\n')[1]?.trim());
        if (reported > 0) return reported;
      }
      throw new TestServerError('no sentinel answers');
    };
    const pids = () => new Set([...servers.values()].map((server) => server.pid));
    return {
      name,
      sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
      description: `Redis Sentinel "${name}": primary ${primary}, replica ${replica}, sentinels ${sentinelPorts.join(', ')}`,
      startupMS: performance.now() - started,
      primaryPort,
      killPrimary: async () => {
        const port = await primaryPort();
        const server = servers.get(port);
        if (!server) throw new TestServerError(`the primary on ${port} is not running`);
        const killedAt = performance.now();
        await killRedisOn(port, pids());
        await server.stop();
        servers.delete(port);
        await waitFor(
          async () => {
            const now = await primaryPort().catch(() => port);
            if (now === port) return false;
            return (await infoField(now, 'replication', 'role').catch(() => undefined)) === 'master';
          },
          { what: 'the sentinels to promote the replica', timeoutMS: 30_000, intervalMS: 20 },
        );
        return { port, failoverMS: performance.now() - killedAt };
      },
      restartNode: async (port) => {
        if (servers.has(port)) throw new TestServerError(`port ${port} is still running`);
        // It comes back as a replica of the current primary, as an operator restarts a failed node:
        // started bare it would be an empty primary until the sentinels demote it, and a client
        // reconnecting meanwhile could be sent to it.
        const current = await primaryPort();
        servers.set(port, await launchRedis(binary, port, ['--dir', folder, '--replicaof', '127.0.0.1', String(current)]));
        await waitFor(async () => (await infoField(port, 'replication', 'master_link_status').catch(() => undefined)) === 'up', {
          what: `port ${port} to rejoin as a synced replica`,
          timeoutMS: 30_000,
          intervalMS: 50,
        });
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
