import { createHash, randomBytes } from 'node:crypto';
import {
  type CapabilityName,
  createDataClient,
  createDataLayer,
  createQueryShapeChecker,
  type DataClient,
  type DataClientConfig,
  type DataLayer,
  type DataLayerOptions,
  type DataLayerPlugin,
  type Document,
  type QueryShape,
} from '@caas-db/core';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect, inject, type TestContext } from 'vitest';
import type { TestEnvironment } from './test-environment.js';

export { TEST_ENVIRONMENT_VARIABLE, type TestEnvironment } from './test-environment.js';

/**
 * What the global setup started: the MongoDB and Redis servers and MongoDB's capabilities.
 * @throws when the run has no `@caas-db/testing/global-setup`.
 */
export function testEnvironment(): TestEnvironment {
  const environment = inject('caasDb');
  if (!environment) {
    throw new Error("No test servers: add '@caas-db/testing/global-setup' to vitest's globalSetup");
  }
  return environment;
}

const databaseNames = new Map<string, string>();

/**
 * The database of the current test file: the same name for every call in one file, a different
 * one in every other file (and every run), so files never see each other's data.
 */
export function testDatabaseName(): string {
  const testPath = expect.getState().testPath ?? 'unknown';
  let name = databaseNames.get(testPath);
  if (!name) {
    const fileHash = createHash('sha256').update(testPath).digest('hex').slice(0, 8);
    name = `caas_test_${fileHash}_${randomBytes(3).toString('hex')}`;
    databaseNames.set(testPath, name);
  }
  return name;
}

/**
 * Skips the running test, with the reason printed in the run's summary, when the server lacks any
 * of `capabilities`; does nothing when it has them all. Call it first in the test.
 *
 * @example
 * ```ts
 * it('commits across repositories', async (context) => {
 *   requireCapability(context, 'transactions');
 *   // ...
 * });
 * ```
 */
export function requireCapability(context: TestContext, ...capabilities: CapabilityName[]): void {
  const environment = testEnvironment();
  const missing = capabilities.filter((name) => !environment.capabilities[name]);
  if (missing.length === 0) return;
  const reason = `requires ${missing.join(', ')}, which ${environment.mongo.backend} lacks`;
  context.task.meta.missingCapabilities = missing;
  skipTest(context, reason);
}

/**
 * Skips the running test with `reason`, which the run's summary prints. Use it for skips that
 * are not about a missing capability (those use {@link requireCapability}).
 */
export function skipTest(context: TestContext, reason: string): never {
  context.task.meta.skipReason = reason;
  return context.skip(reason);
}

/**
 * A data client on this file's database (see {@link testDatabaseName}), closed after the file's
 * tests, its database dropped. Overrides are merged into the configuration. Unlike a production
 * client it has the driver's wire-level command monitoring on (`monitoring: { wire: true }`), so
 * a tenancy isolation auditor can watch the tests' commands.
 */
export function createTestClient(overrides: Partial<DataClientConfig> = {}): DataClient {
  // Wire-level monitoring on by default in tests: it lets the tenancy isolation auditor watch
  // every command a test sends (production clients leave it off for its CPU cost).
  const client = createDataClient({
    uri: testEnvironment().mongo.uri,
    database: testDatabaseName(),
    monitoring: { wire: true },
    ...overrides,
  });
  afterAll(async () => {
    if (!client.closed) {
      await createDataLayer({ client })
        .admin.dropDatabase()
        .catch(() => undefined);
      await client.close();
    }
  });
  return client;
}

/** What a test-plugin factory gives {@link createTestDataLayer}. */
export interface TestPluginSetup {
  /** Plugins every test data layer of the file gets (e.g. `createTenancy(...)`). */
  plugins: DataLayerPlugin[];
  /** Runs once per data layer after its indexes are synced (e.g. to provision tenant databases). */
  provision?: (layer: DataLayer) => Promise<void>;
  /** Other databases the plugins write to for this file, snapshotted and dropped with it. */
  ownsDatabase?: (name: string) => boolean;
}

const testPlugins: Array<(databaseName: string) => TestPluginSetup> = [];

/**
 * Makes every {@link createTestDataLayer} of the test files that follow use these plugins (in
 * addition to any registered before). Call it from a vitest setup file: the repository suites run
 * once more per configuration this way (caas-db runs them under both tenancy strategies and with
 * the cache on).
 */
export function useTestPlugins(factory: (databaseName: string) => TestPluginSetup): void {
  testPlugins.push(factory);
}

function pluginSetupFor(databaseName: string): TestPluginSetup | undefined {
  if (testPlugins.length === 0) return undefined;
  const setups = testPlugins.map((factory) => factory(databaseName));
  return {
    plugins: setups.flatMap((setup) => setup.plugins),
    provision: async (layer) => {
      for (const setup of setups) await setup.provision?.(layer);
    },
    ownsDatabase: (name) => setups.some((setup) => setup.ownsDatabase?.(name) ?? false),
  };
}

const ownedDatabases: Array<(name: string) => boolean> = [];

/**
 * A data layer with every repository on this file's database, its indexes synced before the first
 * test. Every query it sends is checked against the repositories' declared query shapes: a query
 * no declared index serves fails the file. Plugins registered with {@link useTestPlugins} are added.
 */
export function createTestDataLayer(options: Omit<DataLayerOptions, 'client'> & { client?: DataClient } = {}): DataLayer {
  const client = options.client ?? createTestClient();
  const shapes = new Map<string, QueryShape[]>();
  const checker = createQueryShapeChecker(shapes);
  const setup = pluginSetupFor(client.databaseName);
  if (setup?.ownsDatabase) ownedDatabases.push(setup.ownsDatabase);
  const data = createDataLayer({
    ...options,
    client,
    observers: [...(options.observers ?? []), checker],
    plugins: [...(setup?.plugins ?? []), ...(options.plugins ?? [])],
  });
  for (const repository of Object.values(data)) {
    const definition = (repository as { definition?: { collection: string; queries: QueryShape[] } }).definition;
    if (definition) shapes.set(definition.collection, definition.queries);
  }
  beforeAll(async () => {
    await data.syncIndexes();
    await setup?.provision?.(data);
  });
  afterAll(async () => {
    expect(checker.undeclared(), 'queries served by no declared query shape').toEqual([]);
    if (setup?.ownsDatabase) {
      for (const name of await data.admin.listDatabases()) {
        if (setup.ownsDatabase(name)) await data.admin.dropDatabase(name);
      }
    }
  });
  return data;
}

/**
 * Every document of every collection of the client's database (and of the databases plugins own
 * for this file), sorted by database, collection and `_id`: compare a snapshot taken before a call
 * with one taken after to prove the call wrote nothing. It reads over a connection of its own, so
 * an isolation auditor on the client never sees it.
 */
export async function snapshotDatabase(client: DataClient): Promise<Record<string, Document[]>> {
  const reader = new MongoClient(client.config.uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    const { databases } = await reader.db('admin').admin().listDatabases({ nameOnly: true });
    const names = databases
      .map((database) => database.name)
      .filter((name) => name === client.databaseName || ownedDatabases.some((owns) => owns(name)));
    const snapshot: Record<string, Document[]> = {};
    for (const databaseName of names.sort()) {
      const db = reader.db(databaseName);
      const collections = (await db.listCollections({}, { nameOnly: true }).toArray()).map((collection) => collection.name).sort();
      for (const name of collections) snapshot[`${databaseName}.${name}`] = await db.collection(name).find({}).sort({ _id: 1 }).toArray();
    }
    return snapshot;
  } finally {
    await reader.close();
  }
}

/**
 * A check for the rule "bad input never corrupts": `check(action)` expects `action` to fail with a
 * `type` error (a `ValidationError` unless given) and the client's database to be exactly as before.
 *
 * @example
 * ```ts
 * const expectNoWrites = refusalCheck(data.client, ValidationError);
 * await expectNoWrites(() => acme.users.create({ external_id: '$admin', profile: { display_name: 'x' } }));
 * ```
 */
export function refusalCheck(client: DataClient, defaultType: abstract new (...args: never[]) => Error) {
  return async (action: () => Promise<unknown>, type: abstract new (...args: never[]) => Error = defaultType): Promise<void> => {
    const before = await snapshotDatabase(client);
    await expect(action()).rejects.toBeInstanceOf(type);
    expect(await snapshotDatabase(client)).toEqual(before);
  };
}
