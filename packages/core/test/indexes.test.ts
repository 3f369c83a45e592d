import { createTestClient, createTestDataLayer, requireCapability, testDatabaseName } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import {
  compareIndexes,
  createDataLayer,
  createQueryShapeChecker,
  type IndexDeclaration,
  indexServes,
  ObjectId,
  type QueryShape,
  type Repository,
  type RepositoryDefinition,
} from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const data = createTestDataLayer();
/** Every repository of the data model, with its definition. */
const repositories = Object.values(data).filter(
  (repository): repository is Repository<never> =>
    typeof repository === 'object' && repository !== null && (repository as { definition?: unknown }).definition !== undefined,
);
const definitions: RepositoryDefinition<never>[] = repositories.map((repository) => repository.definition);

describe('declared query shapes', () => {
  it('covers every collection of the data model', () => {
    expect(definitions.map((definition) => definition.collection).sort()).toEqual(
      [
        'aggregations',
        'api_keys',
        'applications',
        'audit_logs',
        'billing',
        'clients',
        'conversations',
        'events',
        'files',
        'groups',
        'messages',
        'metrics',
        'settings',
        'users',
      ].sort(),
    );
  });

  it.each(
    definitions.flatMap((definition) =>
      definition.queries.map((shape) => [definition.collection, shape.name, shape, definition.indexes] as const),
    ),
  )('%s: “%s” is served by a declared index', (_, __, shape, indexes) => {
    if (shape.equality.includes('_id')) return expect(shape.equality).toEqual(['_id']);
    const serving = indexes.filter((index) => indexServes(index, shape));
    expect(
      serving.map((index) => index.name),
      JSON.stringify(shape),
    ).not.toEqual([]);
  });

  it('every index of a tenant-owned collection starts with tenant_id, except single-field TTL indexes', () => {
    for (const definition of definitions.filter((candidate) => candidate.tenantOwned)) {
      for (const index of definition.indexes) {
        if (index.expireAfterSeconds !== undefined) continue;
        expect(Object.keys(index.key)[0], `${definition.collection}.${index.name}`).toBe('tenant_id');
      }
    }
  });
});

describe('indexServes', () => {
  const index: IndexDeclaration = { name: 'i', key: { tenant_id: 1, conversation_id: 1, created_at: -1, _id: -1 }, purpose: 'test' };
  it.each([
    [{ name: 'eq only', equality: ['conversation_id', 'tenant_id'] }, true],
    [
      {
        name: 'eq + sort',
        equality: ['tenant_id', 'conversation_id'],
        sort: [
          ['created_at', -1],
          ['_id', -1],
        ],
      },
      true,
    ],
    [
      {
        name: 'eq + reversed sort',
        equality: ['tenant_id', 'conversation_id'],
        sort: [
          ['created_at', 1],
          ['_id', 1],
        ],
      },
      true,
    ],
    [
      {
        name: 'mixed directions',
        equality: ['tenant_id', 'conversation_id'],
        sort: [
          ['created_at', 1],
          ['_id', -1],
        ],
      },
      false,
    ],
    [{ name: 'missing prefix', equality: ['conversation_id'] }, false],
    [{ name: 'sort before equality', equality: ['tenant_id'], sort: [['created_at', -1]] }, false],
    [{ name: 'unindexed equality', equality: ['tenant_id', 'sender_id'] }, false],
  ] as Array<[QueryShape, boolean]>)('%o → %s', (shape, expected) => {
    expect(indexServes(index, shape)).toBe(expected);
  });
});

describe('query-shape checker', () => {
  it('flags a query no declared shape serves, and passes declared ones', () => {
    const checker = createQueryShapeChecker(
      new Map([['messages', [{ name: 'history', equality: ['tenant_id', 'conversation_id'], sort: [['_id', -1]] }] as QueryShape[]]]),
    );
    const target = { name: 'messages', tenantOwned: true, operation: 'messages.x', tenant: 'a' };
    checker.observe({
      command: {
        kind: 'find',
        filter: { tenant_id: 'a', conversation_id: new ObjectId(), deleted_at: null },
        options: { sort: { _id: -1 } },
      },
      target,
      durationMS: 1,
    });
    checker.observe({ command: { kind: 'find', filter: { _id: new ObjectId() }, options: {} }, target, durationMS: 1 });
    expect(checker.undeclared()).toEqual([]);
    checker.observe({
      command: { kind: 'count', filter: { tenant_id: 'a', sender_id: new ObjectId() }, options: {} },
      target,
      durationMS: 1,
    });
    checker.observe({
      command: { kind: 'find', filter: { tenant_id: 'a', conversation_id: 1 }, options: { sort: { created_at: -1 } } },
      target,
      durationMS: 1,
    });
    expect(checker.undeclared().map((query) => query.equality)).toEqual([
      ['sender_id', 'tenant_id'],
      ['conversation_id', 'tenant_id'],
    ]);
  });
});

describe('syncIndexes', () => {
  it('created every declared index of the data model', async () => {
    const reports = await data.syncIndexes();
    for (const report of reports) {
      expect(report.drift.missing, report.collection).toEqual([]);
      expect(report.created, report.collection).toEqual([]);
    }
  });

  it('reports missing, extra and different indexes, and drops only when told to', async () => {
    const client = createTestClient({ database: `${testDatabaseName()}_drift` });
    const layer = createDataLayer({ client });
    // Indexes made outside the repositories (by hand, or by an older release): the drift to find.
    const groups = unsafeDatabase(client).collection('groups');
    await groups.createIndex({ tenant_id: 1, owner_id: 1, _id: -1 }, { name: 'tenant_owner', unique: false, sparse: true });
    await groups.createIndex({ name: 1 }, { name: 'legacy_name' });
    const first = await layer.groups.syncIndexes();
    expect(first.drift.missing.map((index) => index.name)).toEqual(['tenant_member']);
    expect(first.drift.extra).toEqual(['legacy_name']);
    expect(first.drift.different).toEqual([{ name: 'tenant_owner', field: 'sparse', declared: false, actual: true }]);
    expect(first.created).toEqual(['tenant_member']);
    expect(first.dropped).toEqual([]);
    const second = await layer.groups.syncIndexes({ dropExtra: true, rebuildDifferent: true });
    expect(second.dropped.sort()).toEqual(['legacy_name', 'tenant_owner']);
    expect(second.created).toEqual(['tenant_owner']);
    const third = await layer.groups.syncIndexes();
    expect(third.drift).toEqual({ missing: [], extra: [], different: [] });
  });

  it('compares key order and options', () => {
    const declared: IndexDeclaration[] = [{ name: 'a', key: { x: 1, y: -1 }, unique: true, purpose: 't' }];
    expect(
      compareIndexes(declared, [{ name: 'a', key: { y: -1, x: 1 }, unique: true }]).different.map((difference) => difference.field),
    ).toEqual(['key']);
    expect(compareIndexes(declared, [{ name: 'a', key: { x: 1, y: -1 }, unique: true }]).different).toEqual([]);
  });
});

describe('query plans (explain)', () => {
  it('every declared query shape uses an index scan on a server with explain', async (context) => {
    requireCapability(context, 'explain');
    for (const repository of repositories) {
      const { definition } = repository;
      for (const shape of definition.queries) {
        const filter = Object.fromEntries(
          shape.equality.map((field) => [field, field === '_id' || field.endsWith('_id') ? new ObjectId() : 'x']),
        );
        const sort = Object.fromEntries(shape.sort ?? []);
        // Through the repository (the pipeline), as its own queries are sent.
        const plan = await repository.explain(filter as never, { sort });
        const label = `${definition.collection}: ${shape.name}`;
        expect(plan.stages, label).not.toEqual([]);
        expect(plan.stages, label).not.toContain('COLLSCAN');
        expect(plan.collectionScan, label).toBe(false);
      }
    }
  });
});
