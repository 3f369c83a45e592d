/**
 * Builds a data layer with tenancy (shared or database-per-tenant), the lifecycle plugin, a manual
 * clock and a query-shape checker over the core repositories' and the lifecycle's declared shapes.
 */
import {
  createDataClient,
  createDataLayer,
  createQueryShapeChecker,
  type DataClient,
  type DataLayer,
  type Document,
  type Middleware,
  type QueryShape,
} from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTenancy, type Tenancy } from '@caas-db/tenancy';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  checkpointsDefinition,
  createLifecycle,
  holdsDefinition,
  type Lifecycle,
  type LifecycleOptions,
  lifecycleQueryShapes,
  type ManualClock,
  manualClock,
  policiesDefinition,
} from '../src/index.js';

/** The two tenancy strategies every lifecycle suite runs under. */
export const strategies = ['shared', 'database'] as const;
export type Strategy = (typeof strategies)[number];

export interface Setup {
  client: DataClient;
  data: DataLayer;
  lifecycle: Lifecycle;
  tenancy: Tenancy;
  clock: ManualClock;
  strategy: Strategy;
  /** The database holding a tenant's documents. */
  databaseOf(tenant: string): Promise<string>;
  /** Every document of a tenant's collection, read directly (no pipeline). */
  raw(tenant: string, collection: string, filter?: Document): Promise<Document[]>;
}

/** The start of every suite's clock. */
export const START = new Date('2026-06-01T00:00:00.000Z');

/**
 * One data layer per suite and strategy, its indexes synced and tenants provisioned before the
 * first test; the query-shape checker must have found nothing undeclared after the last.
 */
export function setupLifecycle(
  strategy: Strategy,
  tenants: readonly string[],
  options: Omit<LifecycleOptions, 'clock'> = {},
  middlewares: Middleware[] = [],
): Setup {
  const client = createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName(), monitoring: { wire: true } });
  const prefix = `l${strategy[0]}${testDatabaseName().slice(-6)}`;
  const tenancy = createTenancy({
    requireActiveTenant: false,
    audit: 'enforce',
    strategy: strategy === 'database' ? { default: 'database', databasePrefix: prefix } : {},
  });
  const clock = manualClock(START);
  const lifecycle = createLifecycle({ clock, ...options });
  const shapes = new Map<string, QueryShape[]>();
  const checker = createQueryShapeChecker(shapes);
  const data = createDataLayer({
    client,
    plugins: [tenancy, lifecycle],
    middlewares,
    observers: [checker],
    now: clock,
    integrity: { messages: true },
  });
  for (const repository of Object.values(data)) {
    const definition = (repository as { definition?: { collection: string; queries: QueryShape[] } }).definition;
    if (definition) shapes.set(definition.collection, [...definition.queries, ...(lifecycleQueryShapes[definition.collection] ?? [])]);
  }
  shapes.set('audit_logs', [...data.auditLogs.definition.queries]);
  for (const definition of [policiesDefinition, holdsDefinition, checkpointsDefinition])
    shapes.set(definition.collection, [...definition.queries]);

  beforeAll(async () => {
    await data.syncIndexes();
    await lifecycle.syncIndexes();
    for (const tenant of tenants) {
      if (strategy === 'database') await tenancy.provisionTenant(tenant);
      await lifecycle.syncIndexes(tenant);
    }
  });
  afterAll(async () => {
    expect(checker.undeclared(), 'queries served by no declared query shape').toEqual([]);
    for (const name of await data.admin.listDatabases()) if (name.startsWith(`${prefix}_`)) await data.admin.dropDatabase(name);
    await data.admin.dropDatabase().catch(() => undefined);
    await client.close();
  });
  const databaseOf = (tenant: string) => tenancy.databaseOf(tenant);
  return {
    client,
    data,
    lifecycle,
    tenancy,
    clock,
    strategy,
    databaseOf,
    raw: async (tenant, collection, filter = {}) =>
      unsafeDatabase(client, await databaseOf(tenant))
        .collection(collection)
        .find({ tenant_id: tenant, ...filter })
        .sort({ _id: 1 })
        .toArray(),
  };
}

/** An opaque ciphertext for a message body. */
export const cipher = (seed: string) => Buffer.from(`cipher:${seed}`).toString('base64url');
