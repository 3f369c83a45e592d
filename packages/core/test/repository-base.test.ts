import { createTestClient, snapshotDatabase } from '@caas-db/testing/vitest';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConcurrencyError,
  CursorError,
  createDataLayer,
  DuplicateKeyError,
  freeFormSchema,
  NotFoundError,
  ObjectId,
  objectIdSchema,
  Repository,
  type RepositoryDefinition,
  TenantMismatchError,
  tenantIdSchema,
  text,
  ValidationError,
} from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const noteSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  title: text(64, 1),
  body: text(1000).optional(),
  author_id: objectIdSchema,
  rank: z.number().int().min(0).default(0),
  tags: z.array(z.string().max(16)).max(8).default([]),
  meta: z.strictObject({ color: z.enum(['red', 'blue']).optional(), pinned: z.boolean().default(false) }).default({ pinned: false }),
  extra: freeFormSchema.optional(),
});

const notesDefinition: RepositoryDefinition<typeof noteSchema> = {
  collection: 'notes',
  schema: noteSchema,
  tenantOwned: true,
  schemaVersion: 3,
  softDelete: true,
  versioned: true,
  sortable: ['rank', 'created_at'],
  indexes: [
    { name: 'tenant_title', key: { tenant_id: 1, title: 1 }, unique: true, purpose: 'unique titles' },
    { name: 'tenant_rank', key: { tenant_id: 1, rank: -1, _id: -1 }, purpose: 'by rank' },
  ],
  queries: [
    {
      name: 'by rank',
      equality: ['tenant_id'],
      sort: [
        ['rank', -1],
        ['_id', -1],
      ],
    },
  ],
};

class NoteRepository extends Repository<typeof noteSchema> {}

const client = createTestClient();
const data = createDataLayer({ client, cursorSecret: 'a-test-secret-that-is-long-enough-32' });
const unbound = data.repository(notesDefinition, NoteRepository);
const notes = data.repository(notesDefinition, NoteRepository, 'acme');
const otherTenantNotes = data.repository(notesDefinition, NoteRepository, 'globex');
const author = new ObjectId();

beforeAll(async () => {
  await unbound.syncIndexes();
});

beforeEach(async () => {
  // Every tenant's notes, soft-deleted ones included: no repository call removes them all.
  await unsafeDatabase(client).collection('notes').deleteMany({});
});

/** Runs `action`, expects a typed error, and proves the database did not change. */
async function expectRefusedWithoutWrites(
  action: () => Promise<unknown>,
  errorType: abstract new (...args: never[]) => Error = ValidationError,
) {
  const before = await snapshotDatabase(client);
  const error = await action().then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(errorType);
  expect(await snapshotDatabase(client)).toEqual(before);
  return error as Error;
}

describe('Repository.create', () => {
  it('stores a validated document with system fields, the bound tenant and defaults', async () => {
    const note = await notes.create({ title: 'hello', author_id: author.toHexString() });
    expect(note).toMatchObject({
      tenant_id: 'acme',
      title: 'hello',
      rank: 0,
      tags: [],
      meta: { pinned: false },
      schema_version: 3,
      version: 1,
      deleted_at: null,
    });
    expect(note.author_id).toBeInstanceOf(ObjectId);
    expect(note.created_at).toBeInstanceOf(Date);
    expect(note.updated_at).toEqual(note.created_at);
    expect(await notes.findById(note._id)).toEqual(note);
  });

  it.each([
    ['a wrong type', { title: 42, author_id: author }, 'title'],
    ['an unknown field', { title: 'x', author_id: author, colour: 'red' }, ''],
    ['an oversized string', { title: 'x'.repeat(65), author_id: author }, 'title'],
    ['an invalid ObjectId', { title: 'x', author_id: '1234' }, 'author_id'],
    ['a $-prefixed key in a free-form value', { title: 'x', author_id: author, extra: { $where: 'sleep(1000)' } }, 'extra.$where'],
    ['a dotted key in a free-form value', { title: 'x', author_id: author, extra: { 'a.b': 1 } }, 'extra.a.b'],
    ['a _bsontype key', { title: 'x', author_id: author, extra: { _bsontype: 'Code', code: 'x' } }, 'extra._bsontype'],
    [
      'a __proto__ key',
      JSON.parse(`{ "title": "x", "author_id": "${author.toHexString()}", "extra": { "__proto__": { "polluted": true } } }`),
      'extra.__proto__',
    ],
    ['a missing required field', { title: 'x' }, 'author_id'],
    ['not an object', 'note', ''],
  ])('refuses %s with a ValidationError naming the field, writing nothing', async (_, input, path) => {
    const error = await expectRefusedWithoutWrites(() => notes.create(input as never));
    expect((error as ValidationError).issues.map((issue) => issue.path)).toContain(path);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a document naming another tenant', async () => {
    await expectRefusedWithoutWrites(() => notes.create({ tenant_id: 'globex', title: 'x', author_id: author }), TenantMismatchError);
  });

  it('reports a duplicate key with the key and value', async () => {
    await notes.create({ title: 'same', author_id: author });
    const error = await expectRefusedWithoutWrites(() => notes.create({ title: 'same', author_id: author }), DuplicateKeyError);
    expect(error).toMatchObject({ code: 'E_DUPLICATE_KEY', collection: 'notes' });
    expect((error as DuplicateKeyError).key).toMatchObject({ title: 'same' });
  });
});

describe('Repository.createMany', () => {
  it('inserts all documents, or none when one is invalid', async () => {
    const created = await notes.createMany([
      { title: 'a', author_id: author },
      { title: 'b', author_id: author },
    ]);
    expect(created).toHaveLength(2);
    expect(await notes.count()).toBe(2);
    const error = await expectRefusedWithoutWrites(() =>
      notes.createMany([
        { title: 'c', author_id: author },
        { title: '', author_id: author },
      ]),
    );
    expect((error as ValidationError).message).toMatch(/notes document 1/);
    await expectRefusedWithoutWrites(() => notes.createMany([]));
  });
});

describe('Repository reads', () => {
  it('findById, findOne, count and exists hide other tenants and soft-deleted documents', async () => {
    const mine = await notes.create({ title: 'mine', author_id: author });
    const theirs = await otherTenantNotes.create({ title: 'mine', author_id: author });
    expect(await notes.findById(theirs._id)).toBeNull();
    expect(await notes.findOne({ title: 'mine' })).toMatchObject({ _id: mine._id });
    expect(await notes.count()).toBe(1);
    expect(await unbound.count()).toBe(2);
    await notes.softDelete(mine._id);
    expect(await notes.findById(mine._id)).toBeNull();
    expect(await notes.exists({ title: 'mine' })).toBe(false);
    expect(await notes.findById(mine._id, { includeDeleted: true })).toMatchObject({ title: 'mine' });
    expect(await notes.count({}, { includeDeleted: true })).toBe(1);
  });

  it('narrows the result to a projection', async () => {
    const note = await notes.create({ title: 'projected', body: 'long', author_id: author });
    const found = await notes.findById(note._id, { projection: { title: 1 } });
    expect(found).toEqual({ _id: note._id, title: 'projected' });
    // @ts-expect-error body is not in the projection, so not in the type
    expect(found?.body).toBeUndefined();
  });

  it.each([
    ['an invalid id', () => notes.findById('nope')],
    ['a $where filter', () => notes.findOne({ $where: 'true' } as never)],
    ['a nested $function', () => notes.count({ $expr: { $function: { body: 'x', args: [], lang: 'js' } } } as never)],
    ['a _bsontype key in a filter', () => notes.findOne({ title: { _bsontype: 'Code' } } as never)],
    ['an unknown projection field', () => notes.findById(new ObjectId(), { projection: { nope: 1 } as never })],
    ['a filter naming another tenant', () => notes.findOne({ tenant_id: 'globex' } as never)],
  ])('refuses %s with a typed error', async (_, action) => {
    await expect(action()).rejects.toMatchObject({ code: expect.stringMatching(/^E_(VALIDATION|TENANT_MISMATCH)$/) });
  });

  it('getById throws NotFoundError', async () => {
    await expect(notes.getById(new ObjectId())).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('Repository.findMany (keyset pagination)', () => {
  it('pages by any sortable field with an _id tiebreak, then ends with a null cursor', async () => {
    await notes.createMany(Array.from({ length: 7 }, (_, index) => ({ title: `n${index}`, author_id: author, rank: index % 3 })));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Awaited<ReturnType<typeof notes.findMany>> = await notes.findMany(
        {},
        { sort: { field: 'rank', direction: 'desc' }, limit: 3, cursor },
      );
      seen.push(...page.items.map((note) => note.title));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(7);
    expect(new Set(seen).size).toBe(7);
    const ranks = (await notes.findMany({}, { sort: { field: 'rank', direction: 'desc' }, limit: 10 })).items.map((note) => note.rank);
    expect(ranks).toEqual([...ranks].sort((a, b) => b - a));
  });

  it('refuses a tampered cursor, a cursor of another query, and an unsortable field', async () => {
    await notes.createMany(Array.from({ length: 4 }, (_, index) => ({ title: `t${index}`, author_id: author })));
    const first = await notes.findMany({}, { limit: 2 });
    const cursor = first.nextCursor ?? '';
    const [body, mac] = cursor.split('.');
    const forged = `${Buffer.from(
      Buffer.from(body ?? '', 'base64url')
        .toString()
        .replace(/"i":"[0-9a-f]+"/, `"i":"${new ObjectId().toHexString()}"`),
    ).toString('base64url')}.${mac}`;
    await expect(notes.findMany({}, { limit: 2, cursor: forged })).rejects.toBeInstanceOf(CursorError);
    await expect(notes.findMany({}, { limit: 2, cursor: 'garbage' })).rejects.toBeInstanceOf(CursorError);
    await expect(notes.findMany({ title: { $ne: 'x' } }, { limit: 2, cursor })).rejects.toThrow(/another query/);
    const otherLayer = createDataLayer({ client, cursorSecret: 'another-secret-that-is-long-enough-32' }).repository(
      notesDefinition,
      NoteRepository,
      'acme',
    );
    await expect(otherLayer.findMany({}, { limit: 2, cursor })).rejects.toThrow(/altered or was issued by another deployment/);
    await expect(notes.findMany({}, { sort: { field: 'body' as never, direction: 'asc' } })).rejects.toBeInstanceOf(ValidationError);
    await expect(notes.findMany({}, { limit: 0 })).rejects.toBeInstanceOf(ValidationError);
    await expect(notes.findMany({}, { limit: 501 })).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('Repository.update and updateWith', () => {
  it('merges a deep-partial patch and stamps updated_at and version', async () => {
    const note = await notes.create({ title: 'patch me', author_id: author, meta: { color: 'red', pinned: false } });
    const updated = await notes.update(note._id, { meta: { pinned: true }, rank: 5 });
    expect(updated).toMatchObject({ rank: 5, meta: { color: 'red', pinned: true }, version: 2 });
    expect(updated.updated_at.getTime()).toBeGreaterThanOrEqual(note.updated_at.getTime());
  });

  it('applies validated raw operators', async () => {
    const note = await notes.create({ title: 'raw', author_id: author, tags: ['a'] });
    const updated = await notes.updateWith(note._id, { $inc: { rank: 2 }, $addToSet: { tags: 'b' }, $set: { 'meta.color': 'blue' } });
    expect(updated).toMatchObject({ rank: 2, tags: ['a', 'b'], meta: { color: 'blue' } });
    const pushed = await notes.updateWith(note._id, { $push: { tags: { $each: ['c', 'd'] } }, $unset: { body: '' } });
    expect(pushed.tags).toEqual(['a', 'b', 'c', 'd']);
  });

  it.each([
    ['an unknown field', { title: { nope: 1 } }, 'patch'],
    ['a wrong type', { rank: 'high' }, 'patch'],
    ['an oversized string', { title: 'x'.repeat(65) }, 'patch'],
    ['an empty patch', {}, 'patch'],
    ['a $-prefixed key', { extra: { $gt: 1 } }, 'patch'],
    ['changing tenant_id', { $set: { tenant_id: 'globex' } }, 'raw'],
    ['changing _id', { $set: { _id: new ObjectId() } }, 'raw'],
    ['$inc of a string field', { $inc: { title: 1 } }, 'raw'],
    ['$push onto a non-array', { $push: { rank: 1 } }, 'raw'],
    ['an invalid pushed element', { $push: { tags: 'x'.repeat(17) } }, 'raw'],
    ['$unset of a required field', { $unset: { title: '' } }, 'raw'],
    ['an unknown operator', { $rename: { title: 'name' } }, 'raw'],
    ['a pipeline update', [{ $set: { rank: 1 } }], 'raw'],
    ['a field path into nowhere', { $set: { 'meta.size': 3 } }, 'raw'],
    ['a $where in $pull', { $pull: { tags: { $where: 'true' } } }, 'raw'],
  ])('refuses %s with a ValidationError, writing nothing', async (_, change, kind) => {
    const note = await notes.create({ title: `refuse-${Math.random()}`, author_id: author });
    await expectRefusedWithoutWrites(() =>
      kind === 'patch' ? notes.update(note._id, change as never) : notes.updateWith(note._id, change as never),
    );
  });

  it('throws NotFoundError for a missing or soft-deleted document', async () => {
    await expect(notes.update(new ObjectId(), { rank: 1 })).rejects.toBeInstanceOf(NotFoundError);
    const note = await notes.create({ title: 'gone', author_id: author });
    await notes.softDelete(note._id);
    await expect(notes.update(note._id, { rank: 1 })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('detects a stale write with expectedVersion and overwrites nothing', async () => {
    const note = await notes.create({ title: 'versioned', author_id: author });
    await notes.update(note._id, { rank: 1 }, { expectedVersion: 1 });
    await expectRefusedWithoutWrites(() => notes.update(note._id, { rank: 99 }, { expectedVersion: 1 }), ConcurrencyError);
    expect((await notes.getById(note._id)).rank).toBe(1);
  });

  it('lets exactly one of many concurrent writers with the same expectedVersion win', async () => {
    const note = await notes.create({ title: 'race', author_id: author });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, index) => notes.update(note._id, { rank: index }, { expectedVersion: 1 })),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    const rejected = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(rejected.every((outcome) => outcome.reason instanceof ConcurrencyError)).toBe(true);
    expect((await notes.getById(note._id)).version).toBe(2);
  });
});

describe('Repository.updateMany, upsert and findOneAndUpdate', () => {
  it('updateMany changes only the bound tenant’s live documents', async () => {
    await notes.createMany([
      { title: 'u1', author_id: author },
      { title: 'u2', author_id: author },
    ]);
    await otherTenantNotes.create({ title: 'u1', author_id: author });
    expect(await notes.updateMany({}, { $inc: { rank: 1 } })).toEqual({ matched: 2, modified: 2 });
    expect((await otherTenantNotes.findOne({ title: 'u1' }))?.rank).toBe(0);
    await expectRefusedWithoutWrites(() => notes.updateMany({ $where: 'true' } as never, { $inc: { rank: 1 } }));
  });

  it('upsert inserts once and then updates, also under concurrent calls', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) => notes.upsert({ title: 'singleton' }, { title: 'singleton', author_id: author, rank: index })),
    );
    expect(results.filter((result) => result.created)).toHaveLength(1);
    expect(await notes.count({ title: 'singleton' })).toBe(1);
    const stored = await notes.findOne({ title: 'singleton' });
    expect(stored).toMatchObject({ tenant_id: 'acme', schema_version: 3 });
    await expectRefusedWithoutWrites(() => notes.upsert({ title: 'x' }, { title: 'x', author_id: 'bad' } as never));
  });

  it('findOneAndUpdate returns the document before or after', async () => {
    await notes.create({ title: 'fou', author_id: author, rank: 1 });
    const before = await notes.findOneAndUpdate({ title: 'fou' }, { $inc: { rank: 1 } }, { returnDocument: 'before' });
    expect(before?.rank).toBe(1);
    const after = await notes.findOneAndUpdate({ title: 'fou' }, { $inc: { rank: 1 } });
    expect(after?.rank).toBe(3);
    expect(await notes.findOneAndUpdate({ title: 'none' }, { $inc: { rank: 1 } })).toBeNull();
  });
});

describe('Repository.delete, softDelete and restore', () => {
  it('soft-deletes, restores, and deletes for good', async () => {
    const note = await notes.create({ title: 'lifecycle', author_id: author });
    expect(await notes.softDelete(note._id)).toBe(true);
    expect(await notes.softDelete(note._id)).toBe(false);
    expect(await notes.restore(note._id)).toBe(true);
    expect(await notes.restore(note._id)).toBe(false);
    expect(await notes.findById(note._id)).not.toBeNull();
    expect(await notes.delete(note._id)).toBe(true);
    expect(await notes.delete(note._id)).toBe(false);
    await expect(notes.softDelete(note._id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(notes.restore(note._id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(notes.delete('not-an-id')).rejects.toBeInstanceOf(ValidationError);
  });

  it('cannot delete another tenant’s document', async () => {
    const theirs = await otherTenantNotes.create({ title: 'theirs', author_id: author });
    expect(await notes.delete(theirs._id)).toBe(false);
    await expect(notes.softDelete(theirs._id)).rejects.toBeInstanceOf(NotFoundError);
    expect(await otherTenantNotes.findById(theirs._id)).not.toBeNull();
  });
});

describe('Repository.bulkWrite', () => {
  it('reports per-item results, ordered and unordered', async () => {
    const existing = await notes.create({ title: 'bulk-existing', author_id: author });
    const operations = [
      { insert: { title: 'bulk-1', author_id: author } },
      { insert: { title: 'bulk-existing', author_id: author } },
      { update: { id: existing._id, patch: { rank: 7 } } },
      { insert: { title: 'bulk-2', author_id: author } },
    ];
    const ordered = await notes.bulkWrite(operations, { ordered: true });
    expect(ordered.items.map((item) => item.status)).toEqual(['ok', 'failed', 'skipped', 'skipped']);
    const failure = ordered.items[1];
    expect(failure?.status === 'failed' && failure.error).toBeInstanceOf(DuplicateKeyError);
    expect(ordered).toMatchObject({ inserted: 1, failed: 1 });

    await notes.delete((await notes.findOne({ title: 'bulk-1' }))?._id ?? new ObjectId());
    const unordered = await notes.bulkWrite(operations, { ordered: false });
    expect(unordered.items.map((item) => item.status)).toEqual(['ok', 'failed', 'ok', 'ok']);
    expect(unordered).toMatchObject({ inserted: 2, matched: 1, modified: 1, failed: 1 });
    expect((await notes.getById(existing._id)).rank).toBe(7);
  });

  it('validates every operation first: one invalid operation writes nothing', async () => {
    await expectRefusedWithoutWrites(() =>
      notes.bulkWrite([{ insert: { title: 'fine', author_id: author } }, { update: { id: 'bad', patch: { rank: 1 } } }]),
    );
    await expectRefusedWithoutWrites(() => notes.bulkWrite([{ insert: { title: 'fine', author_id: author } }, { drop: {} } as never]));
    await expectRefusedWithoutWrites(() => notes.bulkWrite([]));
  });

  it('deletes through bulkWrite', async () => {
    const note = await notes.create({ title: 'bulk-delete', author_id: author });
    const result = await notes.bulkWrite([
      { delete: { id: note._id } },
      { updateWith: { id: new ObjectId(), update: { $inc: { rank: 1 } } } },
    ]);
    expect(result).toMatchObject({ deleted: 1, matched: 0, failed: 0 });
  });
});

describe('validation switch', () => {
  it('skips schema parsing when off but still refuses dangerous keys', async () => {
    const fast = createDataLayer({ client, validate: { notes: false } as never }).repository(notesDefinition, NoteRepository, 'acme');
    const stored = await fast.create({ title: 'fast', author_id: author });
    expect(stored.title).toBe('fast');
    await expectRefusedWithoutWrites(() => fast.create({ title: 'x', author_id: author, extra: { $set: 1 } } as never));
  });

  it('names the data model’s repositories by repository name, also where it differs from the collection', async () => {
    const entry = { actor: { type: 'system', id: 'job' }, action: 'x.y', target: { collection: 'users' }, at: new Date(), extra: 1 };
    const strict = createDataLayer({ client });
    await expect(strict.auditLogs.append(entry as never)).rejects.toBeInstanceOf(ValidationError);
    const fast = createDataLayer({ client, validate: { auditLogs: false } });
    expect((await fast.auditLogs.append(entry as never)).action).toBe('x.y');
  });
});
