import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestServerError } from '../errors.js';
import type { ServerProcess } from '../process/server-process.js';
import { waitFor } from '../wait-for.js';
import { freePort, killRedisOn, launchRedis, redisCli, redisServerBinary } from './redis-process.js';

/** A node of a test cluster or sentinel group, as ioredis takes it. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/** Options of {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** Primaries (each owns a share of the 16384 slots). @default 3 */
  masters?: number;
  /** Replicas per primary (what a failover promotes). @default 0 */
  replicas?: number;
  /** How long a node may be unreachable before the cluster fails it over. @default 1500 */
  nodeTimeoutMS?: number;
}

/** A Redis Cluster of local redis-servers, for tests. */
export interface RedisTestCluster {
  /** Every node: pass them to `new Cluster(nodes)`. */
  nodes: RedisNodeAddress[];
  description: string;
  startupMS: number;
  /** The ports of the current primaries, in slot order. */
  primaries(): Promise<number[]>;
  /** The port of the primary that owns `slot` now. */
  primaryOf(slot: number): Promise<number>;
  /**
   * Kills the primary on `port` with SIGKILL (only a server this fixture started) and resolves
   * once a replica owns its slots and the cluster is `ok` again; with no replica, once it is down.
   * @returns milliseconds from the kill until the cluster was ok again.
   */
  killPrimary(port: number): Promise<number>;
  /** Starts a killed node again on its port: it rejoins, as a replica of whoever took its slots. */
  restartNode(port: number): Promise<void>;
  /** Moves `slots` slots from the primary on `from` to the one on `to` (`redis-cli --cluster reshard`). */
  reshard(options: { from: number; to: number; slots: number }): Promise<void>;
  /** Stops every node and deletes their files. */
  stop(): Promise<void>;
}

interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  master: string;
  slots: string[];
}

function parseNodes(text: string): NodeLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      const [id = '', address = '', flags = '', master = '', , , , , ...slots] = line.trim().split(' ');
      return { id, port: Number(address.split('@')[0]?.split(':')[1]), flags: flags.split(','), master, slots };
    });
}

async function clusterNodes(port: number): Promise<NodeLine[]> {
  return parseNodes(await redisCli(['-p', String(port), 'CLUSTER', 'NODES'], 5000));
}

async function clusterOk(port: number): Promise<boolean> {
  const info = await redisCli(['-p', String(port), 'CLUSTER', 'INFO'], 5000).catch(() => '');
  return info.includes('cluster_state:ok');
}

function firstSlot(line: NodeLine): number {
  const first = line.slots.find((slot) => !slot.startsWith('['));
  return first ? Number(first.split('-')[0]) : Number.POSITIVE_INFINITY;
}

/**
 * Starts a Redis Cluster on loopback ports: `masters` primaries with `replicas` replicas each,
 * built with `redis-cli --cluster create`, persistence off, every node under the same watchdog
 * as {@link startRedis} (the test process dying stops them). Needs redis-server 7 and redis-cli.
 *
 * @example
 * ```ts
 * import { Cluster } from 'ioredis';
 * import { startRedisCluster } from '@caas-db/testing';
 *
 * const cluster = await startRedisCluster({ masters: 3, replicas: 1 });
 * const redis = new Cluster(cluster.nodes);
 * // ...
 * await cluster.stop();
 * ```
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisTestCluster> {
  const started = performance.now();
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  if (!Number.isInteger(masters) || masters < 3) throw new TestServerError('startRedisCluster: masters must be an integer of at least 3');
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 2)
    throw new TestServerError('startRedisCluster: replicas must be 0, 1 or 2');
  const binary = redisServerBinary();
  const folder = mkdtempSync(join(tmpdir(), 'caas-redis-cluster-'));
  const servers = new Map<number, ServerProcess>();
  const nodeArgs = (port: number) => [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(folder, `nodes-${port}.conf`),
    '--cluster-node-timeout',
    String(options.nodeTimeoutMS ?? 1500),
    '--dir',
    folder,
  ];
  const stop = async () => {
    await Promise.allSettled([...servers.values()].map((server) => server.stop()));
    servers.clear();
    rmSync(folder, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    while (ports.length < masters * (1 + replicas)) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    await Promise.all(
      ports.map(async (port) => {
        servers.set(port, await launchRedis(binary, port, nodeArgs(port)));
      }),
    );
    await redisCli([
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ]);
    const total = ports.length;
    await waitFor(
      async () => {
        for (const port of ports) {
          if (!(await clusterOk(port))) return false;
          const lines = await clusterNodes(port);
          if (lines.length !== total || lines.some((line) => line.flags.includes('handshake'))) return false;
        }
        // Every replica has finished its first sync, so a failover has someone to promote.
        for (const line of await clusterNodes(ports[0] as number)) {
          if (!line.flags.includes('slave')) continue;
          const info = await redisCli(['-p', String(line.port), 'INFO', 'replication'], 5000);
          if (!info.includes('master_link_status:up')) return false;
        }
        return true;
      },
      { what: 'the Redis Cluster to be ok on every node', timeoutMS: 30_000, intervalMS: 50 },
    );
    const pids = () => new Set([...servers.values()].map((server) => server.pid));
    const live = () => [...servers.keys()];
    const primaries = async () => {
      for (const port of live()) {
        const lines = await clusterNodes(port).catch(() => undefined);
        if (!lines) continue;
        return lines
          .filter((line) => line.flags.includes('master') && !line.flags.includes('fail') && line.slots.length > 0)
          .sort((a, b) => firstSlot(a) - firstSlot(b))
          .map((line) => line.port);
      }
      throw new TestServerError('no node of the test cluster answers');
    };
    return {
      nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
      description: `Redis Cluster of ${masters} primaries × ${replicas} replicas on ports ${ports.join(', ')}`,
      startupMS: performance.now() - started,
      primaries,
      primaryOf: async (slot) => {
        for (const port of live()) {
          const lines = await clusterNodes(port).catch(() => undefined);
          const owner = lines?.find(
            (line) =>
              line.flags.includes('master') &&
              line.slots.some((range) => {
                if (range.startsWith('[')) return false;
                const [low, high = low] = range.split('-').map(Number);
                return slot >= (low as number) && slot <= (high as number);
              }),
          );
          if (owner) return owner.port;
        }
        throw new TestServerError(`no primary owns slot ${slot}`);
      },
      killPrimary: async (port) => {
        const server = servers.get(port);
        if (!server) throw new TestServerError(`port ${port} is not a running node of this cluster`);
        const killedAt = performance.now();
        await killRedisOn(port, pids());
        // The watchdog shell stays until stdin closes: end it too, the node is gone.
        await server.stop();
        servers.delete(port);
        if (replicas === 0) return performance.now() - killedAt;
        await waitFor(
          async () => {
            for (const other of live()) {
              if (!(await clusterOk(other))) return false;
              const lines = await clusterNodes(other);
              const dead = lines.find((line) => line.port === port);
              if (!dead?.flags.includes('fail') || dead.slots.length > 0) return false;
            }
            return true;
          },
          { what: `a replica to take over the slots of port ${port}`, timeoutMS: 30_000, intervalMS: 20 },
        );
        return performance.now() - killedAt;
      },
      restartNode: async (port) => {
        if (servers.has(port)) throw new TestServerError(`port ${port} is still running`);
        servers.set(port, await launchRedis(binary, port, nodeArgs(port)));
        await waitFor(
          async () => {
            const info = await redisCli(['-p', String(port), 'INFO', 'replication'], 5000).catch(() => '');
            return info.includes('role:slave') && info.includes('master_link_status:up');
          },
          { what: `port ${port} to rejoin as a synced replica`, timeoutMS: 30_000, intervalMS: 50 },
        );
      },
      reshard: async ({ from, to, slots }) => {
        const ids = new Map((await clusterNodes(from)).map((line) => [line.port, line.id]));
        const [source, target] = [ids.get(from), ids.get(to)];
        if (!source || !target) throw new TestServerError(`reshard: ${from} or ${to} is not a node of this cluster`);
        await redisCli(
          [
            '--cluster',
            'reshard',
            `127.0.0.1:${from}`,
            '--cluster-from',
            source,
            '--cluster-to',
            target,
            '--cluster-slots',
            String(slots),
            '--cluster-yes',
            '--cluster-pipeline',
            '100',
          ],
          300_000,
        );
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
