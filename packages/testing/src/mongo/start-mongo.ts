import { performance } from 'node:perf_hooks';
import { TestServerError } from '../errors.js';
import { MONGO_JAVA_SERVER_VERSION, startJavaServer } from './java-server.js';
import { startMemoryServer } from './memory-server.js';

/** Which server answers: one given by `MONGODB_URI`, a real `mongod`, or the Java fallback. */
export type MongoBackend = 'external' | 'mongodb-memory-server' | 'mongo-java-server';

/** Options of {@link startMongo}. */
export interface StartMongoOptions {
  /**
   * Ask for a single-node replica set (transactions, change streams) when a real `mongod` is
   * started. The Java fallback has no replica set; check `capabilities.transactions` instead.
   * @default false
   */
  replicaSet?: boolean;
  /**
   * Skip `MONGODB_URI` and mongodb-memory-server and start this backend. Used by tests that must
   * stop and restart their own server.
   */
  backend?: Exclude<MongoBackend, 'external'>;
}

/** A MongoDB server for tests. Call `stop()` when done; the fixtures do it for you. */
export interface MongoTestServer {
  /** A connection string for the driver or `createDataClient`. */
  uri: string;
  backend: MongoBackend;
  /** A human-readable description, e.g. `mongo-java-server 1.47.0 (reports MongoDB 7.0.0)`. */
  description: string;
  /** How long the start took, in milliseconds. */
  startupMS: number;
  /**
   * Stops the server, runs `whileDown` (e.g. to start operations that must wait for it), and starts
   * it again on the same port (an in-memory server comes back empty). Undefined for an external
   * server, which the fixtures never stop.
   */
  restart: ((whileDown?: () => unknown) => Promise<void>) | undefined;
  /** Stops the server (a no-op for an external one). */
  stop(): Promise<void>;
}

async function startJavaBackend(started: number, fallbackReason?: string): Promise<MongoTestServer> {
  let server = await startJavaServer();
  const port = server.port;
  return {
    uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    backend: 'mongo-java-server',
    description:
      `mongo-java-server ${MONGO_JAVA_SERVER_VERSION} (reports MongoDB 7.0.0, wire version 21)` +
      (fallbackReason ? `; no mongod: ${fallbackReason}` : ''),
    startupMS: performance.now() - started,
    restart: async (whileDown) => {
      await server.process.stop();
      await whileDown?.();
      server = await startJavaServer(port);
    },
    stop: () => server.process.stop(),
  };
}

/**
 * Starts (or finds) a MongoDB server for tests, in this order:
 * 1. `MONGODB_URI`, when set: used as it is, never stopped;
 * 2. mongodb-memory-server, when a `mongod` binary can be had (`MONGOMS_SYSTEM_BINARY`, its
 *    cache, or one download attempt whose failure is remembered for a day);
 * 3. mongo-java-server, launched from this package's `java/` folder with Java 17+ and Maven.
 *
 * @example
 * ```ts
 * import { startMongo } from '@caas-db/testing';
 *
 * const mongo = await startMongo();
 * console.log(mongo.backend, mongo.uri);
 * await mongo.stop();
 * ```
 */
export async function startMongo(options: StartMongoOptions = {}): Promise<MongoTestServer> {
  const started = performance.now();
  const forced = options.backend ?? (process.env.CAAS_DB_MONGO_BACKEND as StartMongoOptions['backend'] | undefined);
  if (forced !== undefined && forced !== 'mongodb-memory-server' && forced !== 'mongo-java-server') {
    throw new TestServerError(`Unknown backend '${String(forced)}': use mongodb-memory-server or mongo-java-server`);
  }
  const externalUri = process.env.MONGODB_URI;
  if (!forced && externalUri) {
    return {
      uri: externalUri,
      backend: 'external',
      description: `MONGODB_URI (${externalUri.replace(/\/\/[^@/]*@/, '//***@')})`,
      startupMS: performance.now() - started,
      restart: undefined,
      stop: async () => undefined,
    };
  }
  if (forced === 'mongo-java-server') return startJavaBackend(started);

  const memory = await startMemoryServer(options.replicaSet ?? false);
  if ('uri' in memory) {
    return {
      uri: memory.uri,
      backend: 'mongodb-memory-server',
      description: `mongodb-memory-server (${memory.topology})`,
      startupMS: performance.now() - started,
      restart: memory.restart,
      stop: memory.stop,
    };
  }
  if (forced === 'mongodb-memory-server') throw new TestServerError(`mongodb-memory-server cannot start: ${memory.unavailable}`);
  return startJavaBackend(started, memory.unavailable);
}
