import { createDataLayer, type Document, Repository, type RepositoryDefinition, TenantMismatchError, tenantIdSchema } from '@caas-db/core';
import { createTestClient, requireCapability, skipTest, testEnvironment } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTenancy, scopeCommand, scopePipeline, TenancyViolationError } from '../src/index.js';

const options = { lookupLocalFieldWithPipeline: true };
const legacy = { lookupLocalFieldWithPipeline: false };

describe('scopePipeline (the rewritten command)', () => {
  it('leads with the tenant, merging into a leading $match', () => {
    expect(scopePipeline([{ $sort: { _id: -1 } }], 'acme', options)).toEqual([{ $match: { tenant_id: 'acme' } }, { $sort: { _id: -1 } }]);
    expect(scopePipeline([{ $match: { status: 'sent' } }], 'acme', options)).toEqual([{ $match: { tenant_id: 'acme', status: 'sent' } }]);
    expect(() => scopePipeline([{ $match: { tenant_id: 'globex' } }], 'acme', options)).toThrow(TenantMismatchError);
  });

  it('scopes $lookup with a pipeline, and nested lookups inside it', () => {
    const scoped = scopePipeline(
      [
        {
          $lookup: { from: 'users', let: { s: '$sender_id' }, pipeline: [{ $lookup: { from: 'files', pipeline: [], as: 'f' } }], as: 'u' },
        },
      ],
      'acme',
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
    expect(scopePipeline([lookup], 'acme', options)[1]).toEqual({
      $lookup: { ...lookup.$lookup, pipeline: [{ $match: { tenant_id: 'acme' } }] },
    });
    const rewritten = scopePipeline([lookup], 'acme', legacy)[1] as { $lookup: Document };
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
      'acme',
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
    expect(scopePipeline([{ $search: { text: { query: 'x', path: 'name' } } }], 'acme', options)[1]).toEqual({
      $match: { tenant_id: 'acme' },
    });
    expect(scopePipeline([{ $geoNear: { near: [0, 0], distanceField: 'd' } }], 'acme', options)[0]).toEqual({
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
    expect(() => scopePipeline(pipeline as Document[], 'acme', options)).toThrow(TenancyViolationError);
    expect(() => scopePipeline(pipeline as Document[], 'acme', options)).toThrow(where);
  });
});

describe('scopeCommand', () => {
  it('scopes every filter, stamps inserts, sets tenant_id on upsert, refuses tenant_id updates', () => {
    expect(scopeCommand({ kind: 'deleteMany', filter: {} }, 'acme', options)).toEqual({
      kind: 'deleteMany',
      filter: { tenant_id: 'acme' },
    });
    expect(
      scopeCommand({ kind: 'updateOne', filter: { _id: 1 } as Document, update: { $inc: { n: 1 } }, upsert: true }, 'acme', options),
    ).toEqual({
      kind: 'updateOne',
      filter: { tenant_id: 'acme', _id: 1 },
      update: { $inc: { n: 1 }, $setOnInsert: { tenant_id: 'acme' } },
      upsert: true,
    });
    expect(() =>
      scopeCommand({ kind: 'insertMany', documents: [{ tenant_id: 'acme' }, { tenant_id: 'globex' }], ordered: true }, 'acme', options),
    ).toThrow(TenantMismatchError);
    for (const update of [
      { $set: { tenant_id: 'globex' } },
      { $unset: { tenant_id: '' } },
      { $rename: { tenant_id: 'was' } },
      { $rename: { other: 'tenant_id' } },
      { $set: { 'tenant_id.x': 1 } },
    ]) {
      expect(() => scopeCommand({ kind: 'updateMany', filter: {}, update, upsert: false }, 'acme', options)).toThrow(TenancyViolationError);
    }
    expect(() =>
      scopeCommand({ kind: 'updateOne', filter: {}, update: [{ $set: { a: 1 } }] as never, upsert: false }, 'acme', options),
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
      'acme',
      options,
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

const client = createTestClient();
const data = createDataLayer({ client, plugins: [createTenancy({ requireActiveTenant: false })] });
const acmeNotes = data.repository(notesDefinition, RawNotes, 'acme');
const globexNotes = data.repository(notesDefinition, RawNotes, 'globex');

async function globexTitles(): Promise<string[]> {
  return (await globexNotes.findMany({}, { limit: 500 })).items.map((note) => note.title).sort();
}

beforeAll(async () => {
  await acmeNotes.createMany([{ title: 'a1' }, { title: 'a2' }]);
  await globexNotes.createMany([{ title: 'g1' }, { title: 'g2' }]);
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
});
