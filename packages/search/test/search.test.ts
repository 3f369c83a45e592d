import {
  type AnyBulkWriteOperation,
  type CollectionCommand,
  CursorError,
  createDataLayer,
  type DataLayer,
  type Document,
  type Middleware,
  ObjectId,
  type OperationContext,
  Repository,
  TenantContextError,
  type userSchema,
  usersDefinition,
  ValidationError,
} from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTenancy, runWithTenant } from '@caas-db/tenancy';
import { createTestClient, requireCapability, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { MongoClient } from 'mongodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBlindIndex, createSearch, indexTokens, normalizeText, queryTokens, wordsOf } from '../src/index.js';

describe('normalization and tokens', () => {
  it('folds case, width and diacritics, and splits scripts without spaces', () => {
    expect(normalizeText('Crème Brûlée')).toBe('creme brulee');
    expect(normalizeText('ＡＢＣ Straße ΟΔΟΣ')).toBe('abc strasse οδοσ');
    expect(wordsOf('你好世界，我们去吃饭')).toEqual(['你好', '世界', '我们', '去', '吃饭']);
    expect(wordsOf('こんにちは世界です')).toEqual(['こんにちは', '世界', 'です']);
    expect(wordsOf('Привет, мир!')).toEqual(['привет', 'мир']);
    expect(wordsOf('مرحبا بالعالم')).toEqual(['مرحبا', 'بالعالم']);
  });

  it('indexes words and prefixes, and queries the last word as a prefix', () => {
    expect(indexTokens('Zoë')).toEqual(['w:zoe', 'p:zo', 'p:zoe']);
    expect(queryTokens('zoe  sm')).toEqual({ required: ['w:zoe', 'p:sm'], exact: ['w:zoe', 'w:sm'] });
  });
});

describe('blind index', () => {
  it('derives equal tokens for equal words under one key, and different ones under another', () => {
    const key = 'k'.repeat(32);
    const index = createBlindIndex({ key, keyVersion: 1 });
    const stored = index.tokensOf('Lunch on FRIDAY? lunch!');
    expect(stored).toHaveLength(3);
    expect(stored).toEqual(expect.arrayContaining(index.queryTokens('friday lunch')));
    expect(index.tokensOf('lunch')[0]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(createBlindIndex({ key: 'x'.repeat(32), keyVersion: 2 }).tokensOf('lunch')).not.toEqual(index.tokensOf('lunch'));
    expect(() => createBlindIndex({ key: 'short', keyVersion: 1 })).toThrow(/at least 32 bytes/);
  });
});

const client = createTestClient();
const search = createSearch();
// The indexed messages reference conversations the tests do not create: the reference check is off.
const data: DataLayer = createDataLayer({
  client,
  integrity: { messages: false },
  plugins: [createTenancy({ requireActiveTenant: false }), search],
});
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');
const keyV1 = createBlindIndex({ key: 'conversation-key-version-one-32-bytes!', keyVersion: 1 });
const keyV2 = createBlindIndex({ key: 'conversation-key-version-two-32-bytes!', keyVersion: 2 });
const conversationId = new ObjectId();
const sender = new ObjectId();

/** A corpus in several languages and scripts, with the words each query must find. */
const corpus = [
  { text: 'Lunch on Friday at the café?', index: keyV1 },
  { text: 'Das Meeting ist am Freitag in der Straße', index: keyV1 },
  { text: 'Rendez-vous au café à midi', index: keyV1 },
  { text: 'Встреча в пятницу в кафе', index: keyV1 },
  { text: '金曜日にカフェで会いましょう', index: keyV1 },
  { text: '我们星期五去咖啡馆吃午饭', index: keyV1 },
  { text: 'موعد الغداء يوم الجمعة', index: keyV2 },
];

beforeAll(async () => {
  await data.syncIndexes();
  for (const [position, entry] of corpus.entries()) {
    await acme.messages.create({
      conversation_id: conversationId,
      sender_id: sender,
      content: { type: 'text', encrypted_data: Buffer.from(`ciphertext ${position}`).toString('base64') },
      search_tokens: entry.index.tokensOf(entry.text),
      search_key_version: entry.index.keyVersion,
    });
  }
  await globex.messages.create({
    conversation_id: conversationId,
    sender_id: sender,
    content: { type: 'text', encrypted_data: 'eA' },
    search_tokens: keyV1.tokensOf('lunch friday cafe'),
    search_key_version: 1,
  });
  const names = ['Alice Martin', 'Alicia Keys', 'Bob Marley', 'Zoë Saldaña', 'Søren Kierkegaard', '山田 太郎', 'Иван Петров'];
  for (const [index, name] of names.entries()) await acme.users.create({ external_id: `ext-${index}`, profile: { display_name: name } });
  await globex.users.create({ external_id: 'alice', profile: { display_name: 'Alice of Globex' } });
  await acme.conversations.createGroup({ type: 'group', ownerId: sender, metadata: { name: 'Café lovers' } });
  await acme.conversations.createGroup({ type: 'channel', ownerId: sender, metadata: { name: 'Product launch' } });
});

describe('message search over blind indexes', () => {
  it.each([
    ['friday lunch', 0],
    ['FREITAG strasse', 1],
    ['cafe midi', 2],
    ['пятницу кафе', 3],
    ['金曜日 カフェ', 4],
    ['星期五 咖啡馆', 5],
  ])('finds "%s" without any plaintext on the server', async (query, expected) => {
    const page = await search.forTenant('acme').messages({ tokens: keyV1.queryTokens(query), keyVersion: 1 }, { conversationId });
    expect(page.items.map((message) => Buffer.from(message.content.encrypted_data, 'base64').toString())).toEqual([
      `ciphertext ${expected}`,
    ]);
  });

  it('stores only tokens: no word of the corpus appears in the database', async () => {
    const raw = new MongoClient(testEnvironment().mongo.uri);
    try {
      const stored = JSON.stringify(await raw.db(testDatabaseName()).collection('messages').find({}).toArray());
      for (const word of ['Lunch', 'lunch', 'Freitag', 'café', 'пятницу', '金曜日', '咖啡馆', 'الجمعة']) expect(stored).not.toContain(word);
    } finally {
      await raw.close();
    }
  });

  it('keeps messages findable through a key rotation, querying both versions', async () => {
    const both = [
      { tokens: keyV1.queryTokens('lunch'), keyVersion: 1 },
      { tokens: keyV2.queryTokens('الغداء'), keyVersion: 2 },
    ];
    const page = await search.forTenant('acme').messages(both, { conversationId });
    expect(page.items.map((message) => Buffer.from(message.content.encrypted_data, 'base64').toString()).sort()).toEqual([
      'ciphertext 0',
      'ciphertext 6',
    ]);
    expect((await search.forTenant('acme').messages({ tokens: keyV1.queryTokens('الغداء'), keyVersion: 1 })).items).toEqual([]);
  });

  it('filters by sender, type and time, pages by keyset, and stays within the tenant', async () => {
    const tokens = keyV1.queryTokens('cafe');
    const since = new Date(Date.now() - 600_000);
    const first = await search.forTenant('acme').messages({ tokens }, { senderId: sender, type: 'text', from: since }, { limit: 1 });
    expect(first.items).toHaveLength(1);
    const second = await search
      .forTenant('acme')
      .messages({ tokens }, { senderId: sender, type: 'text', from: since }, { limit: 1, cursor: first.nextCursor });
    expect(second.items).toHaveLength(1);
    expect(second.items[0]?._id).not.toEqual(first.items[0]?._id);
    expect(
      (await search.forTenant('globex').messages({ tokens: keyV1.queryTokens('cafe friday') })).items.every(
        (message) => message.tenant_id === 'globex',
      ),
    ).toBe(true);
    expect(
      (await search.forTenant('acme').messages({ tokens: keyV1.queryTokens('lunch cafe friday') })).items.every(
        (message) => message.tenant_id === 'acme',
      ),
    ).toBe(true);
  });

  it('refuses bad queries with typed errors, and needs a tenant', async () => {
    await expect(search.forTenant('acme').messages({ tokens: [] })).rejects.toBeInstanceOf(ValidationError);
    await expect(search.forTenant('acme').messages({ tokens: ['$where'] })).rejects.toBeInstanceOf(ValidationError);
    await expect(
      search.forTenant('acme').messages({ tokens: keyV1.queryTokens('x y') }, { conversationId: 'nope' }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(search.messages({ tokens: keyV1.queryTokens('lunch') })).rejects.toBeInstanceOf(TenantContextError);
  });
});

describe('user and conversation search (token engine)', () => {
  it('ranks exact words above prefixes, then recency, across scripts and diacritics', async () => {
    const names = async (query: string) => (await search.forTenant('acme').users(query)).items.map((user) => user.profile.display_name);
    expect(await names('ali')).toEqual(['Alicia Keys', 'Alice Martin']);
    expect(await names('alice')).toEqual(['Alice Martin']);
    expect(await names('zoe saldana')).toEqual(['Zoë Saldaña']);
    expect(await names('soren')).toEqual(['Søren Kierkegaard'].filter(() => normalizeText('Søren') === 'soren'));
    expect(await names('山田')).toEqual(['山田 太郎']);
    expect(await names('иван')).toEqual(['Иван Петров']);
    expect(await names('ext-3')).toEqual(['Zoë Saldaña']);
    expect(await names('ext-')).toHaveLength(7);
    expect((await search.forTenant('globex').users('ali')).items.map((user) => user.external_id)).toEqual(['alice']);
  });

  it('keeps tokens current when a name changes, and pages with a cursor', async () => {
    const user = await acme.users.findByExternalId('ext-2');
    if (!user) throw new Error('seed missing');
    await acme.users.update(user._id, { profile: { display_name: 'Robert Nesta' } });
    expect((await search.forTenant('acme').users('marley')).items).toEqual([]);
    expect((await search.forTenant('acme').users('nesta')).items.map((found) => found.external_id)).toEqual(['ext-2']);
    const first = await search.forTenant('acme').users('ext', { limit: 3 });
    const second = await search.forTenant('acme').users('ext', { limit: 3, cursor: first.nextCursor });
    expect(new Set([...first.items, ...second.items].map((found) => found.external_id)).size).toBe(6);
  });

  it('finds conversations by name', async () => {
    expect((await search.forTenant('acme').conversations('cafe')).items.map((found) => found.metadata.name)).toEqual(['Café lovers']);
    expect((await search.forTenant('acme').conversations('launch')).items.map((found) => found.type)).toEqual(['channel']);
    await expect(search.forTenant('acme').users('   ')).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('other engines', () => {
  it('builds an Atlas Search pipeline with the tenant as a compound filter and highlights', () => {
    const atlas = createSearch({ engine: 'atlas', atlasIndexes: { users: 'people' } });
    const [stage] = atlas.pipelineFor('users', 'ali', 'acme');
    expect(stage).toMatchObject({
      $search: {
        index: 'people',
        compound: { filter: [{ equals: { path: 'tenant_id', value: 'acme' } }], minimumShouldMatch: 1 },
        highlight: { path: 'profile.display_name' },
      },
    });
  });

  it('searches with $text where the server has it', async (context) => {
    requireCapability(context, 'textSearch');
    const text = createSearch({ engine: 'text' });
    const layer = createDataLayer({
      client,
      integrity: { messages: false },
      plugins: [createTenancy({ requireActiveTenant: false }), text],
    });
    // The text index the engine needs is not one the users repository declares: made by hand.
    await unsafeDatabase(client).collection('users').createIndex({ 'profile.display_name': 'text' }, { name: 'users_text' });
    expect(layer).toBeDefined();
    expect((await text.forTenant('acme').users('Alice')).items.map((user) => user.profile.display_name)).toContain('Alice Martin');
  });
});

describe('message search paging', () => {
  it('pages through more than 50 matches, each exactly once', async () => {
    const marker = keyV1.tokensOf('paging marker');
    const conversation = new ObjectId();
    const created = await acme.messages.createMany(
      Array.from({ length: 137 }, (_, position) => ({
        conversation_id: conversation,
        sender_id: sender,
        content: { type: 'text' as const, encrypted_data: Buffer.from(`page ${position}`).toString('base64') },
        search_tokens: marker,
        search_key_version: 1,
      })),
    );
    const query = { tokens: keyV1.queryTokens('paging marker'), keyVersion: 1 };
    for (const limit of [undefined, 50, 100]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Awaited<ReturnType<typeof search.messages>> = await search
          .forTenant('acme')
          .messages(query, { conversationId: conversation }, { ...(limit && { limit }), cursor });
        seen.push(...page.items.map((message) => String(message._id)));
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor && pages < 100);
      expect(seen).toHaveLength(created.length);
      expect(new Set(seen).size).toBe(created.length);
      // Equal relevance: newest first, across page boundaries.
      expect(seen).toEqual(created.map((message) => String(message._id)).reverse());
    }
  });
});

describe('search cursors across data layers', () => {
  const secret = 'a-cursor-secret-shared-by-instances-of-one-service';
  const layerWith = (cursorSecret: string) => {
    const plugin = createSearch();
    createDataLayer({
      client,
      integrity: { messages: false },
      cursorSecret,
      plugins: [createTenancy({ requireActiveTenant: false }), plugin],
    });
    return plugin;
  };

  it('accepts a cursor on another instance (or after a restart) with the same cursorSecret', async () => {
    const one = layerWith(secret);
    const two = layerWith(secret);
    const query = { tokens: keyV1.queryTokens('cafe'), keyVersion: 1 };
    const first = await one.forTenant('acme').messages(query, { conversationId }, { limit: 1 });
    expect(first.nextCursor).not.toBeNull();
    const onOne = await one.forTenant('acme').messages(query, { conversationId }, { limit: 1, cursor: first.nextCursor });
    const onTwo = await two.forTenant('acme').messages(query, { conversationId }, { limit: 1, cursor: first.nextCursor });
    expect(onTwo.items.map((message) => message._id)).toEqual(onOne.items.map((message) => message._id));
    expect(onTwo.items[0]?._id).not.toEqual(first.items[0]?._id);
    const users = await one.forTenant('acme').users('ext', { limit: 2 });
    expect((await two.forTenant('acme').users('ext', { limit: 2, cursor: users.nextCursor })).items).toHaveLength(2);
  });

  it('refuses a cursor signed with another cursorSecret', async () => {
    const one = layerWith(secret);
    const other = layerWith('another-secret-of-another-deployment-xx');
    const query = { tokens: keyV1.queryTokens('cafe'), keyVersion: 1 };
    const first = await one.forTenant('acme').messages(query, { conversationId }, { limit: 1 });
    await expect(
      other.forTenant('acme').messages(query, { conversationId }, { limit: 1, cursor: first.nextCursor }),
    ).rejects.toBeInstanceOf(CursorError);
    const users = await one.forTenant('acme').users('ext', { limit: 2 });
    await expect(other.forTenant('acme').users('ext', { limit: 2, cursor: users.nextCursor })).rejects.toBeInstanceOf(CursorError);
  });

  it('refuses a cursor issued to another tenant, like the repositories do', async () => {
    const query = { tokens: keyV1.queryTokens('cafe'), keyVersion: 1 };
    const first = await search.forTenant('acme').messages(query, {}, { limit: 1 });
    expect(first.nextCursor).not.toBeNull();
    await expect(search.forTenant('globex').messages(query, {}, { limit: 1, cursor: first.nextCursor })).rejects.toBeInstanceOf(
      CursorError,
    );
  });
});

/** Records every command as sent; aggregations on `users` get no rows (engines the test server lacks). */
function recorder(seen: CollectionCommand[]): Middleware {
  return {
    name: 'rec',
    phase: 'transport',
    handle: (ctx, next) => {
      seen.push(ctx.command);
      return ctx.command.kind === 'aggregate' && ctx.collection?.name === 'users' ? Promise.resolve([]) : next();
    },
  };
}

describe('user text stays text', () => {
  it('does not evaluate a query starting with $ as an aggregation expression', async () => {
    const dollar = data.forTenant('dollar');
    await dollar.users.create({ external_id: 'd-1', profile: { display_name: 'external_id one' } });
    await dollar.users.create({ external_id: 'd-2', profile: { display_name: 'external_id two' } });
    await dollar.users.create({ external_id: 'd-3', profile: { display_name: 'Xi Ling' } });
    const hits = await search.forTenant('dollar').users('$external_id');
    // One whole word matched, and no exact external id: `$external_id` is not the field path.
    expect(hits.items.map((user) => [user.external_id, user.score]).sort()).toEqual([
      ['d-1', 1],
      ['d-2', 1],
    ]);
  });

  it('does not evaluate a query starting with $$ as a variable', async () => {
    const xi = await search.forTenant('dollar').users('$$xi');
    expect(xi.items.map((user) => [user.external_id, user.score])).toEqual([['d-3', 1]]);
    expect((await search.forTenant('dollar').users('$$ROOT')).items).toEqual([]);
    expect((await search.forTenant('dollar').conversations('$$xi')).items).toEqual([]);
  });

  it('wraps the query and its tokens as literals wherever they reach an expression', () => {
    const pipeline = JSON.stringify(createSearch().pipelineFor('users', '$external_id', 'acme'));
    expect(pipeline).toContain('{"$literal":"$external_id"}');
    expect(pipeline).toContain('{"$literal":["w:external_id"]}');
    expect(pipeline).not.toMatch(/"\$eq":\["\$external_id","\$external_id"\]/);
  });
});

/** A repository sending raw write commands, for the command shapes the stock repositories do not produce. */
class RawUsers extends Repository<typeof userSchema> {
  bulk(operations: AnyBulkWriteOperation<Document>[]) {
    return this.collection.bulkWrite('rawBulk', operations, true);
  }
  upsertRaw(filter: Document, update: Document) {
    return this.collection.updateOne('rawUpsert', filter, update, { upsert: true });
  }
  findOneAndUpsert(filter: Document, update: Document) {
    return this.collection.findOneAndUpdate('rawFindOneAndUpsert', filter, update, { upsert: true });
  }
  updateManyRaw(filter: Document, update: Document) {
    return this.collection.updateMany('rawUpdateMany', filter, update);
  }
}

describe('search tokens on every write', () => {
  const ids = (page: { items: Document[] }) => page.items.map((user) => String(user.external_id)).sort();
  const found = (query: string) => search.forTenant('bulk').users(query).then(ids);
  const now = () => ({ created_at: new Date(), updated_at: new Date(), schema_version: 1, deleted_at: null, version: 1 });

  it('keeps tokens current through users.bulkWrite (insert, patch and raw update)', async () => {
    const bulk = data.forTenant('bulk');
    const summary = await bulk.users.bulkWrite([
      { insert: { external_id: 'b-1', profile: { display_name: 'Bulky Insert' } } },
      { insert: { external_id: 'b-2', profile: { display_name: 'Second Bulkhead' } } },
    ]);
    expect(summary.inserted).toBe(2);
    expect(await found('bulky')).toEqual(['b-1']);
    expect(await found('bulkhead')).toEqual(['b-2']);
    const [one, two] = summary.items.map((item) => (item.status === 'ok' ? item.id : undefined));
    await bulk.users.bulkWrite([
      { update: { id: one as ObjectId, patch: { profile: { display_name: 'Renamed Patch' } } } },
      { updateWith: { id: two as ObjectId, update: { $set: { profile: { display_name: 'Renamed Whole', status: 'away' } } } } },
    ]);
    expect(await found('bulky')).toEqual([]);
    expect(await found('bulkhead')).toEqual([]);
    expect(await found('patch')).toEqual(['b-1']);
    expect(await found('whole')).toEqual(['b-2']);
  });

  it('keeps tokens current through raw bulk items: insertOne, updateOne, updateMany, upserts', async () => {
    const raw = data.repository(usersDefinition(), RawUsers, 'bulk');
    const base = (externalId: string, name: string) => ({
      _id: new ObjectId(),
      external_id: externalId,
      profile: { display_name: name, status: 'offline' },
      settings: { notifications: true },
      relationships: [],
      ...now(),
    });
    const withoutExternalId = ({ external_id: _, ...rest }: Document) => rest;
    const [r1, r2, r3] = [base('r-1', 'Raw Alpha'), base('r-2', 'Raw Beta'), base('r-3', 'Raw Gamma')];
    await raw.bulk([{ insertOne: { document: r1 } }, { insertOne: { document: r2 } }, { insertOne: { document: r3 } }]);
    expect(await found('alpha')).toEqual(['r-1']);
    await raw.bulk([
      { updateOne: { filter: { _id: r1._id }, update: { $set: { 'profile.display_name': 'Raw Delta' } } } },
      { updateMany: { filter: { _id: r2._id }, update: { $set: { profile: { display_name: 'Raw Epsilon', status: 'offline' } } } } },
      { updateOne: { filter: { _id: r3._id }, update: { $set: { 'profile.display_name': 'Raw Zeta' } } } },
      {
        updateOne: {
          filter: { external_id: 'r-4' },
          update: { $setOnInsert: withoutExternalId(base('r-4', 'Raw Sprouted')) },
          upsert: true,
        },
      },
    ]);
    expect(await found('alpha')).toEqual([]);
    expect(await found('beta')).toEqual([]);
    expect(await found('gamma')).toEqual([]);
    expect(await found('delta')).toEqual(['r-1']);
    expect(await found('epsilon')).toEqual(['r-2']);
    expect(await found('zeta')).toEqual(['r-3']);
    expect(await found('sprouted')).toEqual(['r-4']);
  });

  it('keeps tokens current through upserts with $setOnInsert, findOneAndUpdate and updateMany', async () => {
    const raw = data.repository(usersDefinition(), RawUsers, 'bulk');
    const insertOnly = { profile: { display_name: 'Inserted Only', status: 'offline' }, ...now() };
    await raw.upsertRaw({ external_id: 'u-1' }, { $setOnInsert: insertOnly });
    expect(await found('inserted only')).toEqual(['u-1']);
    // Matched this time: $setOnInsert does nothing, and the tokens stay those of the stored name.
    await raw.upsertRaw({ external_id: 'u-1' }, { $setOnInsert: { ...insertOnly, profile: { display_name: 'Ignored Name' } } });
    expect(await found('ignored')).toEqual([]);
    expect(await found('inserted')).toEqual(['u-1']);
    await raw.findOneAndUpsert({ external_id: 'u-2' }, { $setOnInsert: { ...insertOnly, profile: { display_name: 'Found Upsert' } } });
    expect(await found('found upsert')).toEqual(['u-2']);
    await raw.findOneAndUpsert({ external_id: 'u-2' }, { $set: { 'profile.display_name': 'Found Moved' } });
    expect(await found('upsert')).toEqual([]);
    expect(await found('moved')).toEqual(['u-2']);
    await raw.updateManyRaw({ external_id: { $in: ['u-1', 'u-2'] } }, { $set: { 'profile.display_name': 'Many Renamed' } });
    expect(await found('many')).toEqual(['u-1', 'u-2']);
    expect(await found('found')).toEqual([]);
  });

  it('derives tokens for every write kind, bulk replaceOne included (which core refuses before sending today)', async () => {
    const layer = createSearch().middlewares?.find((middleware) => middleware.name === 'search-tokens');
    if (!layer) throw new Error('no search-tokens middleware');
    const derived = async (command: CollectionCommand, collection = 'conversations') => {
      const ctx = { command, collection: { name: collection, tenantOwned: true } } as OperationContext;
      await layer.handle(ctx, async () => undefined);
      return ctx.command;
    };
    const named = { metadata: { name: 'Launch Room' } };
    const tokens = indexTokens('Launch Room');
    expect(await derived({ kind: 'bulkWrite', ordered: true, operations: [{ replaceOne: { filter: {}, replacement: named } }] })).toEqual({
      kind: 'bulkWrite',
      ordered: true,
      operations: [{ replaceOne: { filter: {}, replacement: { ...named, search_tokens: tokens } } }],
    });
    const update = (operand: Document) => ({ kind: 'updateMany' as const, filter: {}, upsert: true, update: operand });
    // The name removed: so are its tokens.
    expect(await derived(update({ $unset: { 'metadata.name': '' } }))).toMatchObject({ update: { $set: { search_tokens: [] } } });
    // Set on update and on insert: the tokens follow $set only (the same path in both would be a conflict).
    expect(
      await derived(update({ $set: { 'metadata.name': 'Launch Room' }, $setOnInsert: { search_tokens: ['w:stale'], type: 'group' } })),
    ).toMatchObject({ update: { $set: { search_tokens: tokens }, $setOnInsert: { type: 'group' } } });
    expect(await derived(update({ $set: { 'metadata.topic': 'x' } }))).toEqual(update({ $set: { 'metadata.topic': 'x' } }));
    expect(await derived({ kind: 'insertOne', document: named }, 'messages')).toEqual({ kind: 'insertOne', document: named });
  });
});

describe('engines as sent through the pipeline', () => {
  it('atlas: resolves the ambient tenant at call time and keeps $search first', async () => {
    const seen: CollectionCommand[] = [];
    const atlas = createSearch({ engine: 'atlas' });
    createDataLayer({
      client,
      integrity: { messages: false },
      plugins: [createTenancy({ requireActiveTenant: false }), atlas],
      middlewares: [recorder(seen)],
    });
    await runWithTenant('acme', () => atlas.users('ali'));
    await atlas.forTenant('globex').users('ali');
    const pipelines = seen.flatMap((command) => (command.kind === 'aggregate' ? [command.pipeline] : []));
    expect(pipelines).toHaveLength(2);
    for (const [pipeline, tenant] of [
      [pipelines[0], 'acme'],
      [pipelines[1], 'globex'],
    ] as const) {
      expect(Object.keys(pipeline?.[0] ?? {})).toEqual(['$search']);
      // The scoper's tenant $match right after $search is the guarantee; the compound filter, with the
      // same tenant, keeps Atlas from scoring and returning other tenants' documents.
      expect(pipeline?.[1]).toEqual({ $match: { tenant_id: tenant } });
      expect(pipeline?.[0]?.$search.compound.filter).toEqual([{ equals: { path: 'tenant_id', value: tenant } }]);
    }
    expect(JSON.stringify(pipelines)).not.toContain('"value":""');
    await expect(atlas.users('ali')).rejects.toBeInstanceOf(TenantContextError);
  });

  it('text: sends $text in the first stage, with the tenant merged into it', async () => {
    const seen: CollectionCommand[] = [];
    const text = createSearch({ engine: 'text' });
    createDataLayer({
      client,
      integrity: { messages: false },
      plugins: [createTenancy({ requireActiveTenant: false }), text],
      middlewares: [recorder(seen)],
    });
    await text.forTenant('acme').users('$alice');
    await runWithTenant('globex', () => text.users('alice'));
    const pipelines = seen.flatMap((command) => (command.kind === 'aggregate' ? [command.pipeline] : []));
    expect(pipelines.map((pipeline) => pipeline[0])).toEqual([
      { $match: { tenant_id: 'acme', $text: { $search: '$alice' }, deleted_at: null } },
      { $match: { tenant_id: 'globex', $text: { $search: 'alice' }, deleted_at: null } },
    ]);
    expect(pipelines.every((pipeline) => pipeline.slice(1).every((stage) => !('$text' in (stage.$match ?? {}))))).toBe(true);
  });
});
