import {
  createDataLayer,
  type Document,
  isCaasDbError,
  ObjectId,
  Repository,
  type RepositoryDefinition,
  tenantIdSchema,
} from '@caas-db/core';
import { createBlindIndex, createSearch } from '@caas-db/search';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import fc from 'fast-check';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTenancy, type IsolationViolation } from '../src/index.js';

/**
 * Random filters, updates and pipelines, sent through the choke point by three tenants over
 * overlapping data: no run may read, change or delete another tenant's document, and every
 * refused operation must raise a typed caas-db error. The seed is printed so a failure replays.
 */
const TENANTS = ['t-one', 't-two', 't-three'] as const;
type Tenant = (typeof TENANTS)[number];

const itemSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  k: z.number().int(),
  tag: z.string(),
  n: z.number(),
  ref: z.number().int(),
});
const definition = (collection: string): RepositoryDefinition<typeof itemSchema> => ({
  collection,
  schema: itemSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [{ name: 'tenant_k', key: { tenant_id: 1, k: 1 }, purpose: 'test' }],
  queries: [],
});

/** A platform collection (no tenant): its pipelines may still join into tenant-owned ones. */
const boardSchema = z.strictObject({ k: z.number().int(), ref: z.number().int() });
const boardDefinition: RepositoryDefinition<typeof boardSchema> = {
  collection: 'boards',
  schema: boardSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [],
  queries: [],
};

class Boards extends Repository<typeof boardSchema> {
  get raw() {
    return this.collection;
  }
}

/** Exposes the scoped collection so the test can send arbitrary commands through the choke point. */
class Items extends Repository<typeof itemSchema> {
  get raw() {
    return this.collection;
  }
}

const client = createTestClient();
const tenancy = createTenancy({ requireActiveTenant: false, audit: 'enforce' });
const search = createSearch();
// These messages reference conversations the test does not create: the reference check is off.
const data = createDataLayer({ client, integrity: { messages: false }, plugins: [tenancy, search] });
const blindIndex = createBlindIndex({ key: 'property-test-blind-index-key-32b!', keyVersion: 1 });
const WORDS = ['alpha', 'beta', 'gamma', 'delta'];
const items = Object.fromEntries(TENANTS.map((tenant) => [tenant, data.repository(definition('items'), Items, tenant)])) as Record<
  Tenant,
  Items
>;
const links = Object.fromEntries(TENANTS.map((tenant) => [tenant, data.repository(definition('links'), Items, tenant)])) as Record<
  Tenant,
  Items
>;
const boards = Object.fromEntries(TENANTS.map((tenant) => [tenant, data.repository(boardDefinition, Boards, tenant)])) as Record<
  Tenant,
  Boards
>;
const unboundBoards = data.repository(boardDefinition, Boards);
const observer = new MongoClient(testEnvironment().mongo.uri);
const auditViolations: IsolationViolation[] = [];

/** The same documents for every tenant: overlapping keys and tags, so a leak would match. */
function seedFor(tenant: Tenant): Document[] {
  return Array.from({ length: 6 }, (_, index) => ({
    tenant_id: tenant,
    k: index % 3,
    tag: ['red', 'blue'][index % 2] ?? 'red',
    n: index,
    ref: index % 3,
  }));
}

async function seed(tenant: Tenant): Promise<void> {
  await items[tenant].createMany(seedFor(tenant) as never);
  await links[tenant].createMany(seedFor(tenant) as never);
}

/** The same users and messages for every tenant, so a search leak would match. */
async function seedSearchable(tenant: Tenant): Promise<void> {
  const repositories = data.forTenant(tenant);
  for (const word of WORDS) {
    await repositories.users.create({ external_id: `${word}-user`, profile: { display_name: `${word} person` } });
    await repositories.messages.create({
      conversation_id: new ObjectId(),
      sender_id: new ObjectId(),
      content: { type: 'text', encrypted_data: 'eA' },
      search_tokens: blindIndex.tokensOf(`${word} words`),
    });
  }
}

/** Removes every item and link and seeds each tenant again. */
async function reseed(): Promise<void> {
  const db = observer.db(testDatabaseName());
  await Promise.all([db.collection('items').deleteMany({}), db.collection('links').deleteMany({})]);
  for (const tenant of TENANTS) await seed(tenant);
}

async function snapshotOthers(acting: Tenant): Promise<Document[]> {
  const db = observer.db(testDatabaseName());
  const others = TENANTS.filter((tenant) => tenant !== acting);
  const [a, b] = await Promise.all([
    db
      .collection('items')
      .find({ tenant_id: { $in: others } })
      .sort({ _id: 1 })
      .toArray(),
    db
      .collection('links')
      .find({ tenant_id: { $in: others } })
      .sort({ _id: 1 })
      .toArray(),
  ]);
  return [...a, ...b];
}

/** Every `tenant_id` anywhere in a result. */
function tenantsIn(value: unknown, found: Set<unknown> = new Set()): Set<unknown> {
  if (Array.isArray(value)) for (const item of value) tenantsIn(item, found);
  else if (value && typeof value === 'object' && !(value instanceof ObjectId) && !(value instanceof Date)) {
    for (const [key, child] of Object.entries(value)) {
      if (key === 'tenant_id') found.add(child);
      else tenantsIn(child, found);
    }
  }
  return found;
}

// ---- generators ----------------------------------------------------------------------------------
const tenantArbitrary = fc.constantFrom<Tenant>(...TENANTS);
const anyTenantId = fc.constantFrom<string>(...TENANTS, 'nobody');
/** Tenant ids of every JSON type, as they might arrive from a parsed header or token. */
const oddTenantId: fc.Arbitrary<unknown> = fc.oneof(
  anyTenantId,
  fc.constantFrom<unknown>(null, 1, true, '', 'T-ONE', { $ne: null }, { $gt: '' }, { $in: [...TENANTS] }, [...TENANTS], { $exists: true }),
);
/** The same object with another prototype: a null prototype, or a class instance. */
function withOddPrototype(value: Document, kind: 'null' | 'class'): Document {
  if (kind === 'null') return Object.assign(Object.create(null) as Document, value);
  class Filter {}
  return Object.assign(new Filter() as Document, value);
}
const leaf: fc.Arbitrary<Document> = fc.oneof(
  fc.integer({ min: 0, max: 3 }).map((k) => ({ k })),
  fc.integer({ min: 0, max: 3 }).map((k) => ({ k: { $gt: k } })),
  fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }).map((ks) => ({ k: { $in: ks } })),
  fc.constantFrom('red', 'blue', 'green').map((tag) => ({ tag })),
  fc.constantFrom('red', 'blue').map((tag) => ({ tag: { $ne: tag } })),
  anyTenantId.map((tenant) => ({ tenant_id: tenant })),
  anyTenantId.map((tenant) => ({ tenant_id: { $ne: tenant } })),
  fc.array(anyTenantId, { maxLength: 3 }).map((tenants) => ({ tenant_id: { $in: tenants } })),
  anyTenantId.map((tenant) => ({ $expr: { $eq: ['$tenant_id', tenant] } })),
  fc.constant({ $expr: { $gt: ['$n', 2] } }),
  fc.constant({ tenant_id: { $exists: true } }),
  oddTenantId.map((tenant) => ({ tenant_id: tenant })),
  fc.constant({ tags: { $elemMatch: { tenant_id: { $ne: null } } } }),
  fc.constant({ $expr: { $ne: ['$tenant_id', null] } }),
);
const { filter: filterArbitrary } = fc.letrec<{ filter: Document }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((branches) => ({ $or: branches })),
    fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((branches) => ({ $nor: branches })),
    fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((branches) => ({ $and: branches })),
    fc.tuple(leaf, leaf).map(([a, b]) => ({ ...a, ...b })),
    fc.tuple(tie('filter'), fc.constantFrom<'null' | 'class'>('null', 'class')).map(([filter, kind]) => withOddPrototype(filter, kind)),
  ),
}));
const updateArbitrary: fc.Arbitrary<Document> = fc.oneof(
  fc.integer({ min: 0, max: 100 }).map((n) => ({ $set: { n } })),
  fc.constant({ $inc: { n: 1 } }),
  fc.constant({ $set: { tag: 'changed' } }),
  anyTenantId.map((tenant) => ({ $set: { tenant_id: tenant } })),
  fc.constant({ $unset: { tenant_id: '' } }),
  fc.constant({ $rename: { tenant_id: 'owner' } }),
  fc.constant({ $rename: { tag: 'tenant_id' } }),
  anyTenantId.map((tenant) => ({ $setOnInsert: { tenant_id: tenant }, $set: { n: 7 } })),
  oddTenantId.map((tenant) => ({ $set: { tenant_id: tenant } })),
  fc.constant({ $set: { 'tenant_id.x': 1 } }),
  fc.constant([{ $set: { tenant_id: 't-two' } }] as unknown as Document),
  anyTenantId.map((tenant) => ({ tenant_id: tenant, k: 1, tag: 'replaced', n: 0, ref: 0 })),
);
const { pipeline: pipelineArbitrary } = fc.letrec<{ stage: Document; pipeline: Document[] }>((tie) => ({
  stage: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    filterArbitrary.map((filter) => ({ $match: filter })),
    fc.constant({ $project: { tenant_id: 1, k: 1, n: 1 } }),
    fc.constant({ $group: { _id: '$k', tenants: { $addToSet: '$tenant_id' } } }),
    fc
      .tuple(tie('pipeline'), fc.constantFrom('links', 'items', 'boards'))
      .map(([pipeline, from]) => ({ $lookup: { from, let: { k: '$k' }, pipeline, as: 'joined' } })),
    fc
      .constantFrom('links', 'items', 'boards')
      .map((from) => ({ $lookup: { from, localField: 'ref', foreignField: 'ref', as: 'joined' } })),
    fc
      .tuple(tie('pipeline'), fc.constantFrom('links', 'boards'))
      .map(([pipeline, from]) => ({ $lookup: { from, localField: 'ref', foreignField: 'ref', pipeline, as: 'joined' } })),
    fc.constantFrom<Document>({ $unionWith: 'links' }, { $unionWith: { coll: 'links', pipeline: [{ $match: { k: 1 } }] } }),
    tie('pipeline').map((pipeline) => ({ $unionWith: { coll: 'items', pipeline } })),
    fc.tuple(tie('pipeline'), tie('pipeline')).map(([a, b]) => ({ $facet: { a, b } })),
    fc.constant({
      $graphLookup: { from: 'links', startWith: '$ref', connectFromField: 'ref', connectToField: 'k', as: 'graph', maxDepth: 1 },
    }),
    fc.constantFrom<Document>(
      { $out: 'stolen' },
      { $merge: { into: 'stolen' } },
      { $match: { $where: 'true' } },
      { $collStats: { count: {} } },
      { $indexStats: {} },
      { $documents: [{ tenant_id: 't-two' }] },
      { $lookup: { from: 'links', let: { f: { $function: { body: 'return 1', args: [], lang: 'js' } } }, pipeline: [], as: 'x' } },
      { $merge: { into: 'links' } },
    ),
  ),
  pipeline: fc.array(tie('stage'), { maxLength: 3 }),
}));

type Operation =
  | { kind: 'find' | 'count' | 'deleteMany'; filter: Document }
  | { kind: 'updateMany' | 'upsert'; filter: Document; update: Document }
  | { kind: 'aggregate'; pipeline: Document[] }
  | { kind: 'insert'; tenantId: unknown }
  | { kind: 'platformAggregate'; pipeline: Document[]; bound: boolean }
  | { kind: 'bulk'; items: Document[] }
  | { kind: 'repositoryFind'; filter: Document }
  | { kind: 'searchUsers' | 'searchMessages'; query: string };
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('find' as const, 'count' as const, 'deleteMany' as const), filter: filterArbitrary }),
  fc.record({ kind: fc.constantFrom('updateMany' as const, 'upsert' as const), filter: filterArbitrary, update: updateArbitrary }),
  fc.record({ kind: fc.constant('aggregate' as const), pipeline: pipelineArbitrary }),
  fc.record({ kind: fc.constant('insert' as const), tenantId: oddTenantId }),
  fc.record({ kind: fc.constant('platformAggregate' as const), pipeline: pipelineArbitrary, bound: fc.boolean() }),
  fc.record({
    kind: fc.constant('bulk' as const),
    items: fc.array(
      fc.oneof(
        oddTenantId.map((tenant) => ({ insertOne: { document: { tenant_id: tenant, k: 8, tag: 'bulk', n: 0, ref: 0 } } })),
        fc.tuple(filterArbitrary, updateArbitrary).map(([filter, update]) => ({ updateMany: { filter, update } })),
        fc.tuple(filterArbitrary, oddTenantId).map(([filter, tenant]) => ({
          replaceOne: { filter, replacement: { tenant_id: tenant, k: 7, tag: 'r', n: 0, ref: 0 }, upsert: true },
        })),
        filterArbitrary.map((filter) => ({ deleteMany: { filter } })),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  }),
  fc.record({ kind: fc.constant('repositoryFind' as const), filter: filterArbitrary }),
  fc.record({
    kind: fc.constantFrom('searchUsers' as const, 'searchMessages' as const),
    query: fc.constantFrom(...WORDS, 'words', 'person', 'al', 'user'),
  }),
);

async function run(acting: Tenant, operation: Operation): Promise<unknown> {
  const raw = items[acting].raw;
  switch (operation.kind) {
    case 'find':
      return raw.find('property', operation.filter, { limit: 100 });
    case 'count':
      return raw.count('property', operation.filter);
    case 'deleteMany':
      return raw.deleteMany('property', operation.filter);
    case 'updateMany':
      return raw.updateMany('property', operation.filter, operation.update);
    case 'upsert':
      return raw.updateOne('property', operation.filter, operation.update, { upsert: true });
    case 'aggregate':
      return raw.aggregate('property', operation.pipeline);
    case 'insert':
      return raw.insertOne('property', { tenant_id: operation.tenantId, k: 9, tag: 'new', n: 0, ref: 0 });
    case 'platformAggregate':
      // From a platform collection, bound to the tenant or not (then tenancy must fail closed on any join into tenant data).
      return (operation.bound ? boards[acting] : unboundBoards).raw.aggregate('property', operation.pipeline);
    case 'bulk':
      return raw.bulkWrite('property', operation.items as never, false);
    case 'repositoryFind':
      return items[acting].findMany(operation.filter as never, { limit: 100 });
    case 'searchUsers':
      return search.forTenant(acting).users(operation.query, { limit: 100 });
    case 'searchMessages':
      return search.forTenant(acting).messages({ tokens: blindIndex.queryTokens(operation.query) }, {}, { limit: 100 });
  }
}

beforeAll(async () => {
  await observer.connect();
  tenancy.auditor?.on('isolation:violation', (violation) => auditViolations.push(violation));
  await data.syncIndexes();
  for (const tenant of TENANTS) {
    await seed(tenant);
    await seedSearchable(tenant);
  }
  await unboundBoards.createMany([
    { k: 0, ref: 0 },
    { k: 1, ref: 1 },
  ]);
});

afterAll(async () => {
  await observer.close();
});

/** 1,000 runs in `pnpm test`; `pnpm fuzz:tenancy` sets CAAS_DB_FUZZ_RUNS=100000. */
const RUNS = Number(process.env.CAAS_DB_FUZZ_RUNS ?? 1000);

describe(`tenant isolation (property, ${RUNS} random operations)`, () => {
  it('never reads, changes or deletes another tenant’s documents; every refusal is a typed error', {
    timeout: 60_000 + RUNS * 100,
  }, async () => {
    const seedValue = Number(process.env.CAAS_DB_PROPERTY_SEED ?? Date.now() % 2 ** 31);
    process.stdout.write(`isolation property seed: ${seedValue} (replay with CAAS_DB_PROPERTY_SEED=${seedValue})\n`);
    let refused = 0;
    let succeeded = 0;
    let foreign = 0;
    const refusals: Record<string, number> = {};
    await fc.assert(
      fc.asyncProperty(tenantArbitrary, operationArbitrary, async (acting, operation) => {
        const before = await snapshotOthers(acting);
        let result: unknown;
        try {
          result = await run(acting, operation);
          succeeded += 1;
        } catch (error) {
          refused += 1;
          expect(isCaasDbError(error), `untyped error: ${String(error)}`).toBe(true);
          const code = isCaasDbError(error) ? error.code : 'untyped';
          refusals[code] = (refusals[code] ?? 0) + 1;
        }
        const leaked = [...tenantsIn(result)].filter((tenant) => tenant !== acting);
        foreign += leaked.length;
        if ((succeeded + refused) % 10_000 === 0)
          process.stdout.write(`isolation property: ${succeeded + refused} operations, ${refused} refused, ${foreign} foreign\n`);
        expect(leaked, 'documents of another tenant were returned').toEqual([]);
        expect(await snapshotOthers(acting), 'another tenant’s documents changed').toEqual(before);
        if ((await items[acting].count()) < 3) await seed(acting);
        // Long runs: start again from the seed every 500 operations, so that the per-operation
        // snapshot of the other tenants stays small (inserts and upserts accumulate).
        if ((succeeded + refused) % 500 === 0) await reseed();
      }),
      { numRuns: RUNS, seed: seedValue, endOnFailure: true },
    );
    process.stdout.write(
      `isolation property: ${RUNS} operations, ${succeeded} ran, ${refused} refused ${JSON.stringify(refusals)}, foreign documents seen: ${foreign}, auditor violations: ${auditViolations.length}\n`,
    );
    expect(auditViolations, 'the auditor saw an unscoped command: the choke point let one through').toEqual([]);
    expect(foreign).toBe(0);
    expect(succeeded).toBeGreaterThan(RUNS / 5);
    expect(refused).toBeGreaterThan(RUNS / 20);
  });
});
