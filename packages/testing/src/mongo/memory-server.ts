import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from '../paths.js';

/** How long a failed `mongod` download is remembered before it is tried again. */
const DOWNLOAD_FAILURE_TTL_MS = 24 * 60 * 60 * 1000;

/** A running mongodb-memory-server (standalone or single-node replica set). */
export interface MemoryServer {
  uri: string;
  topology: 'standalone' | 'replica set';
  restart(whileDown?: () => unknown): Promise<void>;
  stop(): Promise<void>;
}

function downloadFailureMarker(): string {
  return join(cacheDir(), 'mongod-download-failed.json');
}

function recentDownloadFailure(): string | undefined {
  const marker = downloadFailureMarker();
  if (!existsSync(marker)) return undefined;
  try {
    const { at, reason } = JSON.parse(readFileSync(marker, 'utf8')) as { at: number; reason: string };
    return Date.now() - at < DOWNLOAD_FAILURE_TTL_MS ? reason : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Finds a `mongod` for mongodb-memory-server without paying for a failed download twice:
 * `MONGOMS_SYSTEM_BINARY`, then its binary cache, then one download attempt whose failure is
 * remembered for a day (set `CAAS_DB_MONGOD_DOWNLOAD=0` to never try, `=1` to try again now). Returns the reason when
 * no binary can be had.
 */
async function locateMongod(): Promise<{ path: string } | { unavailable: string }> {
  const { DryMongoBinary, MongoBinary } = await import('mongodb-memory-server');
  const options = await DryMongoBinary.generateOptions();
  const found = await DryMongoBinary.locateBinary(options);
  if (found) return { path: found };
  if (process.env.MONGOMS_SYSTEM_BINARY) return { unavailable: `MONGOMS_SYSTEM_BINARY ${process.env.MONGOMS_SYSTEM_BINARY} not usable` };
  if (process.env.CAAS_DB_MONGOD_DOWNLOAD === '0') return { unavailable: 'download disabled by CAAS_DB_MONGOD_DOWNLOAD=0' };
  // CAAS_DB_MONGOD_DOWNLOAD=1 tries again now, whatever a recent failure says.
  const remembered = process.env.CAAS_DB_MONGOD_DOWNLOAD === '1' ? undefined : recentDownloadFailure();
  if (remembered) {
    return {
      unavailable:
        `its download failed within 24 h (${remembered}); to try again now, set CAAS_DB_MONGOD_DOWNLOAD=1 ` +
        `or delete ${downloadFailureMarker()}`,
    };
  }
  try {
    return { path: await MongoBinary.getPath() };
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 200) ?? 'unknown';
    writeFileSync(downloadFailureMarker(), JSON.stringify({ at: Date.now(), reason }));
    return { unavailable: `download failed (${reason})` };
  }
}

/**
 * Starts mongodb-memory-server when a `mongod` can be had; returns the reason otherwise.
 * @param replicaSet - a single-node replica set (transactions, change streams) instead of a standalone.
 */
export async function startMemoryServer(replicaSet: boolean): Promise<MemoryServer | { unavailable: string }> {
  const located = await locateMongod();
  if ('unavailable' in located) return located;
  const { MongoMemoryReplSet, MongoMemoryServer } = await import('mongodb-memory-server');
  const binary = { systemBinary: located.path };
  if (replicaSet) {
    const set = await MongoMemoryReplSet.create({ binary, replSet: { count: 1, storageEngine: 'wiredTiger' } });
    return {
      uri: set.getUri(),
      topology: 'replica set',
      restart: async (whileDown) => {
        await set.stop({ doCleanup: false });
        await whileDown?.();
        await set.start();
      },
      stop: async () => {
        await set.stop({ doCleanup: true, force: true });
      },
    };
  }
  const server = await MongoMemoryServer.create({ binary });
  return {
    uri: server.getUri(),
    topology: 'standalone',
    restart: async (whileDown) => {
      await server.stop({ doCleanup: false });
      await whileDown?.();
      await server.start(true);
    },
    stop: async () => {
      await server.stop({ doCleanup: true, force: true });
    },
  };
}
