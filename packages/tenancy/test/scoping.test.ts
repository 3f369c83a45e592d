import {
  type CommandScope,
  createDataLayer,
  type Document,
  type PipelineScope,
  Repository,
  type RepositoryDefinition,
  TenantContextError,
  TenantMismatchError,
  tenantIdSchema,
} from '@caas-db/core';
import { unsafeDriver } from '@caas-db/core/unsafe';
import { createTestClient, requireCapability, skipTest, testEnvironment } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTenancy, runWithTenant, scopeCommand, scopePipeline, TenancyViolationError } from '../src/index.js';

/** Collections whose documents belong to no tenant; every other one is tenant-owned (as in the data layer). */
const PLATFORM = new Set(['clients', 'platform_stats']);
const isTenantOwned = (collection: string) => !PLATFORM.has(collection);

/** A scope that fails closed with no tenant (as `@caas-db/tenancy` does), recording where it was reached unbound. */
function scopeOf(tenant: string | undefined, overrides: Partial<PipelineScope> = {}): PipelineScope & { unbound: string[] } {
  const unbound: string[] = [];
  return {
    tenant,
    isTenantOwned,
    lookupLocalFieldWithPipeline: true,
    onUnbound: (path) => {
      unbound.push(path);
      throw new TenantContextError(`reached tenant-owned data at ${path} with no tenant`);
    },
    ...overrides,
    unbound,
  };
}
const options = scopeOf('acme');
const legacy = scopeOf('acme', { lookupLocalFieldWithPipeline: false });
/** Core without tenancy: an unbound command is left as it is. */
const lenient = (tenant: string | undefined) => scopeOf(tenant, { onUnbound: () => undefined });
const on = (collection: string, scope: PipelineScope = options): CommandScope => ({
  ...scope,
  collection: { name: collection, tenantOwned: isTenantOwned(collection) },
});

describe('scopePipeline (the rewritten command)', () => {
  it('leads with the tenant, merging into a leading $match', () => {
    expect(scopePipeline([{ $sort: { _id: -1 } }], true, options)).toEqual([{ $match: { tenant_id: 'acme' } }, { $sort: { _id: -1 } }]);
    expect(scopePipeline([{ $match: { status: 'sent' } }], true, options)).toEqual([{ $match: { tenant_id: 'acme', status: 'sent' } }]);
    expect(() => scopePipeline([{ $match: { tenant_id: 'globex' } }], true, options)).toThrow(TenantMismatchError);
  });

  it('fails closed on a tenant-owned collection with no tenant, or leaves it unscoped when onUnbound returns', () => {
    const unbound = scopeOf(undefined);
    expect(() => scopePipeline([{ $sort: { _id: -1 } }], true, unbound)).toThrow(TenantContextError);
    expect(unbound.unbound).toEqual(['pipeline']);
    expect(scopePipeline([{ $sort: { _id: -1 } }], true, lenient(undefined))).toEqual([{ $sort: { _id: -1 } }]);
    expect(scopePipeline([{ $sort: { _id: -1 } }], false, scopeOf(undefined))).toEqual([{ $sort: { _id: -1 } }]);
  });

  it('scopes $lookup with a pipeline, and nested lookups inside it', () => {
    const scoped = scopePipeline(
      [
        {
          $lookup: { from: 'users', let: { s: '$sender_id' }, pipeline: [{ $lookup: { from: 'files', pipeline: [], as: 'f' } }], as: 'u' },
        },
      ],
      true,
      options,
    );
    expect(scoped[1]).toEqual({
      $lookup: {
        from: 'users',
        let: { s: '$sender_id' },
        pipeline: [
          { $match: { tenant_id: 'acme' } },
          { $lookup: { from: 'files', pipeline: [{ $match: { tenant_id: 'acme' } }], as: 'f' } },
        ],
        as: 'u',
      },
    });
  });

  it('scopes $lookup with localField/foreignField, in the 5.0 form or as a correlated pipeline', () => {
    const lookup = { $lookup: { from: 'users', localField: 'sender_id', foreignField: '_id', as: 'sender' } };
    expect(scopePipeline([lookup], true, options)[1]).toEqual({
      $lookup: { ...lookup.$lookup, pipeline: [{ $match: { tenant_id: 'acme' } }] },
    });
    const rewritten = scopePipeline([lookup], true, legacy)[1] as { $lookup: Document };
    expect(rewritten.$lookup.localField).toBeUndefined();
    expect(rewritten.$lookup.let).toEqual({ caas_local: '$sender_id' });
    expect(rewritten.$lookup.pipeline[0]).toEqual({ $match: { tenant_id: 'acme' } });
  });

  it('scopes $unionWith (both forms), $graphLookup and the joins inside $facet', () => {
    const scoped = scopePipeline(
      [
        { $unionWith: 'files' },
        { $unionWith: { coll: 'groups', pipeline: [{ $project: { name: 1 } }] } },
        {
          $graphLookup: {
            from: 'messages',
            startWith: '$thread.parent_id',
            connectFromField: 'thread.parent_id',
            connectToField: '_id',
            as: 'ancestors',
            restrictSearchWithMatch: { status: 'sent' },
          },
        },
        { $facet: { byType: [{ $group: { _id: '$type' } }], joined: [{ $lookup: { from: 'users', pipeline: [], as: 'u' } }] } },
      ],
      true,
      options,
    );
    expect(scoped[1]).toEqual({ $unionWith: { coll: 'files', pipeline: [{ $match: { tenant_id: 'acme' } }] } });
    expect(scoped[2]).toEqual({ $unionWith: { coll: 'groups', pipeline: [{ $match: { tenant_id: 'acme' } }, { $project: { name: 1 } }] } });
    expect((scoped[3] as { $graphLookup: Document }).$graphLookup.restrictSearchWithMatch).toEqual({ tenant_id: 'acme', status: 'sent' });
    expect((scoped[4] as { $facet: Record<string, Document[]> }).$facet.joined?.[0]).toEqual({
      $lookup: { from: 'users', pipeline: [{ $match: { tenant_id: 'acme' } }], as: 'u' },
    });
    expect((scoped[4] as { $facet: Record<string, Document[]> }).$facet.byType).toEqual([{ $group: { _id: '$type' } }]);
  });

  it('puts the tenant after a leading $search and into $geoNear.query', () => {
    expect(scopePipeline([{ $search: { text: { query: 'x', path: 'name' } } }], true, options)[1]).toEqual({
      $match: { tenant_id: 'acme' },
    });
    expect(scopePipeline([{ $geoNear: { near: [0, 0], distanceField: 'd' } }], true, options)[0]).toEqual({
      $geoNear: { near: [0, 0], distanceField: 'd', query: { tenant_id: 'acme' } },
    });
  });

  it.each([
    [[{ $out: 'stolen' }], '$out'],
    [[{ $merge: { into: 'stolen' } }], '$merge'],
    [[{ $lookup: { from: 'users', pipeline: [{ $out: 'x' }], as: 'u' } }], '$out'],
    [[{ $facet: { a: [{ $merge: 'x' }] } }], '$merge'],
    [[{ $match: { $where: 'true' } }], '$where'],
    [[{ $addFields: { x: { $function: { body: 'f', args: [], lang: 'js' } } } }], '$function'],
    [[{ $group: { _id: null, x: { $accumulator: {} } } }], '$accumulator'],
    [[{ $collStats: { count: {} } }], '$collStats'],
    [[{ $indexStats: {} }], '$indexStats'],
    [[{ $unionWith: { coll: 'users', pipeline: [{ $match: { $where: '1' } }] } }], '$where'],
    [[{ $graphLookup: { startWith: '$x', connectFromField: 'a', connectToField: 'b', as: 'c' } }], 'from'],
  ])('refuses %j', (pipeline, where) => {
    expect(() => scopePipeline(pipeline as Document[], true, options)).toThrow(TenancyViolationError);
    expect(() => scopePipeline(pipeline as Document[], true, options)).toThrow(where);
  });
});

describe('scopePipeline: sub-pipelines are scoped by the collection they read, whatever the outer one', () => {
  const tenantLead = { $match: { tenant_id: 'acme' } };
  const graphLookup = (restrictSearchWithMatch?: Document) => ({
    $graphLookup: {
      from: 'messages',
      startWith: '$_id',
      connectFromField: 'thread.parent_id',
      connectToField: '_id',
      as: 'thread',
      ...(restrictSearchWithMatch && { restrictSearchWithMatch }),
    },
  });
  /** Joins from the platform collection `clients` into the tenant-owned `messages`. */
  const joinsIntoMessages: Array<[string, Document[]]> = [
    ['$lookup with a pipeline', [{ $lookup: { from: 'messages', pipeline: [{ $sort: { _id: -1 } }], as: 'm' } }]],
    [
      '$lookup with localField/foreignField',
      [{ $lookup: { from: 'messages', localField: 'tenant_id', foreignField: 'tenant_id', as: 'm' } }],
    ],
    ['$unionWith by name', [{ $unionWith: 'messages' }]],
    ['$unionWith with a pipeline', [{ $unionWith: { coll: 'messages', pipeline: [{ $limit: 1 }] } }]],
    ['$graphLookup', [graphLookup()]],
    ['$facet → $lookup', [{ $facet: { joined: [{ $lookup: { from: 'messages', pipeline: [], as: 'm' } }] } }]],
    [
      '$lookup of a platform collection → $lookup',
      [{ $lookup: { from: 'clients', pipeline: [{ $lookup: { from: 'messages', pipeline: [], as: 'm' } }], as: 'c' } }],
    ],
  ];

  it('leads each sub-pipeline into a tenant-owned collection with the tenant, and leaves the platform level unscoped', () => {
    const scoped = (pipeline: Document[]) => scopePipeline(pipeline, false, options);
    const [lookup, localField, unionByName, unionWithPipeline, graph, facet, nested] = joinsIntoMessages.map(([, pipeline]) =>
      scoped(pipeline),
    );
    expect(lookup).toEqual([{ $lookup: { from: 'messages', pipeline: [tenantLead, { $sort: { _id: -1 } }], as: 'm' } }]);
    expect(localField).toEqual([
      { $lookup: { from: 'messages', localField: 'tenant_id', foreignField: 'tenant_id', as: 'm', pipeline: [tenantLead] } },
    ]);
    expect(unionByName).toEqual([{ $unionWith: { coll: 'messages', pipeline: [tenantLead] } }]);
    expect(unionWithPipeline).toEqual([{ $unionWith: { coll: 'messages', pipeline: [tenantLead, { $limit: 1 }] } }]);
    expect(graph).toEqual([graphLookup({ tenant_id: 'acme' })]);
    expect(facet).toEqual([{ $facet: { joined: [{ $lookup: { from: 'messages', pipeline: [tenantLead], as: 'm' } }] } }]);
    expect(nested).toEqual([
      { $lookup: { from: 'clients', pipeline: [{ $lookup: { from: 'messages', pipeline: [tenantLead], as: 'm' } }], as: 'c' } },
    ]);
    const correlated = scopePipeline(joinsIntoMessages[1]?.[1] ?? [], false, legacy)[0] as { $lookup: Document };
    expect(correlated.$lookup.pipeline[0]).toEqual(tenantLead);
    expect(correlated.$lookup.localField).toBeUndefined();
  });

  it('merges the tenant into a $graphLookup restrictSearchWithMatch and refuses one naming another tenant', () => {
    expect(scopePipeline([graphLookup({ status: 'sent' })], false, options)).toEqual([graphLookup({ tenant_id: 'acme', status: 'sent' })]);
    expect(() => scopePipeline([graphLookup({ tenant_id: 'globex' })], false, options)).toThrow(TenantMismatchError);
  });

  it.each(joinsIntoMessages)('fails closed with no tenant: %s', (_, pipeline) => {
    const unbound = scopeOf(undefined);
    expect(() => scopePipeline(pipeline, false, unbound)).toThrow(TenantContextError);
    expect(unbound.unbound).toHaveLength(1);
    // Core without tenancy leaves it unscoped (a $unionWith by name in its equivalent long form).
    const unscoped = pipeline[0]?.$unionWith === 'messages' ? [{ $unionWith: { coll: 'messages', pipeline: [] } }] : pipeline;
    expect(scopePipeline(pipeline, false, lenient(undefined))).toEqual(unscoped);
  });

  it('leaves a join into a platform collection unscoped, from either kind of collection, and needs no tenant for it', () => {
    const intoClients: Document[] = [
      { $lookup: { from: 'clients', localField: 'tenant_id', foreignField: 'tenant_id', as: 'client' } },
      { $lookup: { from: 'platform_stats', pipeline: [{ $match: { day: 1 } }], as: 's' } },
      { $unionWith: { coll: 'platform_stats', pipeline: [{ $limit: 1 }] } },
      { $graphLookup: { from: 'clients', startWith: '$parent', connectFromField: 'parent', connectToField: '_id', as: 'chain' } },
    ];
    expect(scopePipeline(intoClients, false, options)).toEqual([
      ...intoClients.slice(0, 2),
      { $unionWith: { coll: 'platform_stats', pipeline: [{ $limit: 1 }] } },
      intoClients[3],
    ]);
    const none = scopeOf(undefined);
    expect(scopePipeline(intoClients, false, none)).toEqual(intoClients);
    expect(none.unbound).toEqual([]);
    // From a tenant-owned collection only the outer level is scoped.
    expect(scopePipeline(intoClients.slice(0, 2), true, options)).toEqual([tenantLead, ...intoClients.slice(0, 2)]);
  });

  it.each([
    ['$out into messages', { $out: 'messages' }],
    ['$out into another database’s messages', { $out: { db: 'other', coll: 'messages' } }],
    ['$merge into users', { $merge: 'users' }],
    ['$merge { into: messages }', { $merge: { into: 'messages' } }],
    ['$merge into another database’s files', { $merge: { into: { db: 'other', coll: 'files' } } }],
    ['$merge into an undeclared collection', { $merge: { into: 'unknown_collection' } }],
  ])('refuses %s from a platform collection, with or without a tenant', (_, stage) => {
    for (const scope of [options, scopeOf(undefined), lenient(undefined)]) {
      expect(() => scopePipeline([{ $match: { status: 'active' } }, stage], false, scope)).toThrow(TenancyViolationError);
      expect(() => scopeCommand({ kind: 'aggregate', pipeline: [stage], options: {} }, on('clients', scope))).toThrow(
        TenancyViolationError,
      );
    }
  });

  it('lets $out/$merge from a platform collection into a platform collection through when no tenant is in scope', () => {
    const pipeline = [{ $group: { _id: '$region', n: { $sum: 1 } } }, { $merge: { into: 'platform_stats' } }];
    expect(scopePipeline(pipeline, false, scopeOf(undefined))).toEqual(pipeline);
    expect(scopePipeline([{ $out: 'platform_stats' }], false, lenient(undefined))).toEqual([{ $out: 'platform_stats' }]);
  });
});

describe('scopeCommand', () => {
  it('scopes every filter, stamps inserts, sets tenant_id on upsert, refuses tenant_id updates', () => {
    expect(scopeCommand({ kind: 'deleteMany', filter: {} }, on('notes'))).toEqual({
      kind: 'deleteMany',
      filter: { tenant_id: 'acme' },
    });
    expect(
      scopeCommand({ kind: 'updateOne', filter: { _id: 1 } as Document, update: { $inc: { n: 1 } }, upsert: true }, on('notes')),
    ).toEqual({
      kind: 'updateOne',
      filter: { tenant_id: 'acme', _id: 1 },
      update: { $inc: { n: 1 }, $setOnInsert: { tenant_id: 'acme' } },
      upsert: true,
    });
    expect(() =>
      scopeCommand({ kind: 'insertMany', documents: [{ tenant_id: 'acme' }, { tenant_id: 'globex' }], ordered: true }, on('notes')),
    ).toThrow(TenantMismatchError);
    for (const update of [
      { $set: { tenant_id: 'globex' } },
      { $unset: { tenant_id: '' } },
      { $rename: { tenant_id: 'was' } },
      { $rename: { other: 'tenant_id' } },
      { $set: { 'tenant_id.x': 1 } },
    ]) {
      expect(() => scopeCommand({ kind: 'updateMany', filter: {}, update, upsert: false }, on('notes'))).toThrow(TenancyViolationError);
    }
    expect(() =>
      scopeCommand({ kind: 'updateOne', filter: {}, update: [{ $set: { a: 1 } }] as never, upsert: false }, on('notes')),
    ).toThrow(/pipeline updates/);
    const bulk = scopeCommand(
      {
        kind: 'bulkWrite',
        ordered: false,
        operations: [
          { insertOne: { document: { a: 1 } } },
          { updateMany: { filter: {}, update: { $set: { a: 2 } } } },
          { deleteOne: { filter: { a: 1 } } },
          { replaceOne: { filter: { a: 2 }, replacement: { a: 3 } } },
        ],
      },
      on('notes'),
    );
    expect(bulk).toMatchObject({
      operations: [
        { insertOne: { document: { a: 1, tenant_id: 'acme' } } },
        { updateMany: { filter: { tenant_id: 'acme' } } },
        { deleteOne: { filter: { tenant_id: 'acme', a: 1 } } },
        { replaceOne: { filter: { tenant_id: 'acme', a: 2 }, replacement: { a: 3, tenant_id: 'acme' } } },
      ],
    });
  });

  it('fails closed on a tenant-owned collection with no tenant, and leaves a platform collection’s filters alone', () => {
    expect(() => scopeCommand({ kind: 'find', filter: {}, options: {} }, on('notes', scopeOf(undefined)))).toThrow(TenantContextError);
    expect(scopeCommand({ kind: 'find', filter: {}, options: {} }, on('notes', lenient(undefined)))).toEqual({
      kind: 'find',
      filter: {},
      options: {},
    });
    expect(scopeCommand({ kind: 'find', filter: { status: 'active' }, options: {} }, on('clients'))).toEqual({
      kind: 'find',
      filter: { status: 'active' },
      options: {},
    });
    // ...but a pipeline on the platform collection is scoped where it reads tenant-owned data.
    expect(
      scopeCommand({ kind: 'aggregate', pipeline: [{ $lookup: { from: 'messages', pipeline: [], as: 'm' } }], options: {} }, on('clients')),
    ).toEqual({
      kind: 'aggregate',
      pipeline: [{ $lookup: { from: 'messages', pipeline: [{ $match: { tenant_id: 'acme' } }], as: 'm' } }],
      options: {},
    });
  });
});

// --- Regression tests for bypasses other tenant layers shipped, on the real server -----------------

const noteSchema = z.strictObject({ tenant_id: tenantIdSchema, title: z.string().max(64), owner: z.string().max(64).optional() });
const notesDefinition: RepositoryDefinition<typeof noteSchema> = {
  collection: 'notes',
  schema: noteSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [{ name: 'tenant_title', key: { tenant_id: 1, title: 1 }, purpose: 'test' }],
  queries: [],
};

/** A repository that exposes its scoped collection, as a careless service might, to show the scoping still applies. */
class RawNotes extends Repository<typeof noteSchema> {
  get raw() {
    return this.collection;
  }
}

/** A platform collection (its documents belong to no tenant), joined into the tenant-owned notes. */
const boardSchema = z.strictObject({ title: z.string().max(64) });
const boardDefinition: RepositoryDefinition<typeof boardSchema> = {
  collection: 'notice_board',
  schema: boardSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [],
  queries: [],
};

class RawBoard extends Repository<typeof boardSchema> {
  get raw() {
    return this.collection;
  }
}

const client = createTestClient();
const data = createDataLayer({ client, plugins: [createTenancy({ requireActiveTenant: false })] });
const acmeNotes = data.repository(notesDefinition, RawNotes, 'acme');
const globexNotes = data.repository(notesDefinition, RawNotes, 'globex');
const board = data.repository(boardDefinition, RawBoard);
const acmeBoard = data.repository(boardDefinition, RawBoard, 'acme');

async function globexTitles(): Promise<string[]> {
  return (await globexNotes.findMany({}, { limit: 500 })).items.map((note) => note.title).sort();
}

beforeAll(async () => {
  await acmeNotes.createMany([{ title: 'a1' }, { title: 'a2' }]);
  await globexNotes.createMany([{ title: 'g1' }, { title: 'g2' }]);
  await board.createMany([{ title: 'a1' }, { title: 'g1' }]);
});

describe('regressions: bypasses other tenant layers shipped', () => {
  it('updateMany is scoped (node-mongo-tenant #60)', async () => {
    await acmeNotes.raw.updateMany('test', {}, { $set: { owner: 'acme-was-here' } });
    expect((await globexNotes.findMany({})).items.every((note) => note.owner === undefined)).toBe(true);
  });

  it('insertMany is stamped and cannot write into another tenant (node-mongo-tenant #7)', async () => {
    await acmeNotes.raw.insertMany('test', [{ title: 'a3' }], true);
    await expect(acmeNotes.raw.insertMany('test', [{ title: 'sneaky', tenant_id: 'globex' }], true)).rejects.toBeInstanceOf(
      TenantMismatchError,
    );
    expect(await globexTitles()).toEqual(['g1', 'g2']);
  });

  it('joins are scoped: $lookup in both forms (node-mongo-tenant #16, MikroORM #2440 and #6784, mongoose #13860)', async () => {
    const pipelineForm = await acmeNotes.raw.aggregate('test', [{ $lookup: { from: 'notes', pipeline: [], as: 'all' } }, { $limit: 1 }]);
    expect(((pipelineForm[0]?.all ?? []) as Document[]).map((note) => note.tenant_id)).not.toContain('globex');
    const localFieldForm = await acmeNotes.raw.aggregate('test', [
      { $lookup: { from: 'notes', localField: 'title', foreignField: 'title', as: 'same' } },
    ]);
    expect(localFieldForm.flatMap((note) => (note.same as Document[]).map((match) => match.tenant_id))).not.toContain('globex');
    expect(localFieldForm.length).toBeGreaterThan(0);
  });

  it('bulkWrite goes through the same scoping as single writes (mongoose #16225)', async () => {
    await acmeNotes.raw.bulkWrite(
      'test',
      [{ updateMany: { filter: {}, update: { $set: { owner: 'bulk' } } } }, { deleteMany: { filter: { title: 'g1' } } }],
      false,
    );
    expect(await globexTitles()).toEqual(['g1', 'g2']);
    expect((await globexNotes.findMany({})).items.some((note) => note.owner === 'bulk')).toBe(false);
  });

  it('operator injection through $nor or $or cannot widen the filter (a sanitizeFilter bypass)', async () => {
    const injected = await acmeNotes.findMany({ $nor: [{ tenant_id: 'acme' }] } as never, { limit: 500 });
    expect(injected.items).toEqual([]);
    const widened = await acmeNotes.findMany({ $or: [{ tenant_id: 'globex' }, { title: { $exists: true } }] } as never, { limit: 500 });
    expect(widened.items.every((note) => note.tenant_id === 'acme')).toBe(true);
    await expect(acmeNotes.findMany({ tenant_id: { $ne: 'acme' } } as never)).rejects.toBeInstanceOf(TenantMismatchError);
    await expect(acmeNotes.findMany({ tenant_id: { $in: ['acme', 'globex'] } } as never)).rejects.toBeInstanceOf(TenantMismatchError);
  });

  it('_bsontype and __proto__ keys in user input are refused', async () => {
    await expect(acmeNotes.findMany({ title: { _bsontype: 'Code', code: 'x' } } as never)).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(acmeNotes.findMany(JSON.parse('{"__proto__": {"tenant_id": "globex"}}'))).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(acmeNotes.create(JSON.parse('{"title": "p", "__proto__": {"tenant_id": "globex"}}'))).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    expect(await globexTitles()).toEqual(['g1', 'g2']);
  });

  it('$unionWith and $graphLookup run scoped where the server has them', async (context) => {
    requireCapability(context, 'unionWith', 'graphLookup');
    const union = await acmeNotes.raw.aggregate('test', [{ $unionWith: 'notes' }]);
    expect(union.every((note) => note.tenant_id === 'acme')).toBe(true);
    const graph = await acmeNotes.raw.aggregate('test', [
      { $graphLookup: { from: 'notes', startWith: '$title', connectFromField: 'title', connectToField: 'title', as: 'chain' } },
    ]);
    expect(graph.flatMap((note) => (note.chain as Document[]).map((match) => match.tenant_id))).not.toContain('globex');
  });

  it('the fallback server really refuses $unionWith, so the rewritten command above is what is checked there', async (context) => {
    if (testEnvironment().capabilities.unionWith) return skipTest(context, 'this server has $unionWith; the test above runs it');
    await expect(acmeNotes.raw.aggregate('test', [{ $unionWith: 'notes' }])).rejects.toMatchObject({ code: 'E_DATABASE' });
  });

  it('a join from a platform collection into a tenant-owned one is scoped, or refused with no tenant (nothing sent)', async () => {
    const join = [
      { $sort: { title: 1 } },
      { $lookup: { from: 'notes', pipeline: [{ $project: { _id: 0, tenant_id: 1, title: 1 } }], as: 'notes' } },
      { $lookup: { from: 'notes', localField: 'title', foreignField: 'title', as: 'same' } },
    ];
    const scoped = await acmeBoard.raw.aggregate('test', join);
    expect(scoped.map((entry) => entry.title)).toEqual(['a1', 'g1']);
    expect(tenantsOf(scoped)).toEqual(['acme']);
    const titlesOf = (entry: Document | undefined) => ((entry?.notes ?? []) as Document[]).map((note) => note.title).sort();
    expect(scoped.map(titlesOf)).toEqual([
      ['a1', 'a2', 'a3'],
      ['a1', 'a2', 'a3'],
    ]);
    // (mongo-java-server does not evaluate the array literal of the pre-5.0 correlated form, so that join finds nothing there.)
    const correlates = testEnvironment().capabilities.lookupLocalFieldWithPipeline;
    if (correlates) expect(scoped.map((entry) => (entry.same as Document[]).length)).toEqual([1, 0]); // g1 is globex's note
    const ambient = await runWithTenant('globex', () => board.raw.aggregate('test', join));
    expect(tenantsOf(ambient)).toEqual(['globex']);
    expect(ambient.map(titlesOf)).toEqual([
      ['g1', 'g2'],
      ['g1', 'g2'],
    ]);
    if (correlates) expect(ambient.map((entry) => (entry.same as Document[]).length)).toEqual([0, 1]);
    const sent: string[] = [];
    const listener = (event: { commandName: string }) => sent.push(event.commandName);
    unsafeDriver(client).on('commandStarted', listener);
    try {
      await expect(board.raw.aggregate('test', join)).rejects.toBeInstanceOf(TenantContextError);
      await expect(board.raw.aggregate('test', [{ $unionWith: 'notes' }])).rejects.toBeInstanceOf(TenantContextError);
    } finally {
      unsafeDriver(client).off('commandStarted', listener);
    }
    expect(sent).toEqual([]);
  });

  it('a join between platform collections needs no tenant; $out from one into a tenant-owned collection is refused', async () => {
    const selfJoin = await board.raw.aggregate('test', [
      { $lookup: { from: 'notice_board', localField: 'title', foreignField: 'title', as: 'same' } },
    ]);
    expect(selfJoin.map((entry) => (entry.same as Document[]).length)).toEqual([1, 1]);
    await expect(
      board.raw.aggregate('test', [{ $project: { _id: 0, title: 1, tenant_id: 'globex' } }, { $out: 'notes' }]),
    ).rejects.toBeInstanceOf(TenancyViolationError);
    await expect(board.raw.aggregate('test', [{ $merge: { into: 'notes' } }])).rejects.toBeInstanceOf(TenancyViolationError);
    expect(await globexTitles()).toEqual(['g1', 'g2']);
  });
});

/** The distinct `tenant_id`s of the joined documents in a result. */
function tenantsOf(result: Document[]): unknown[] {
  const joined = result.flatMap((entry) => [...((entry.notes as Document[]) ?? []), ...((entry.same as Document[]) ?? [])]);
  return [...new Set(joined.map((note) => note.tenant_id))].sort();
}
