/**
 * Derived state under random writes (property): two to three tenants write through TWO data-layer
 * instances (tenancy with document quotas, search, and a two-tier cache each) that share one
 * MongoDB database and one Redis, with writes of every kind, and cached reads interleaved on either
 * instance. After each sequence every derived value is compared with a recomputation from the
 * source documents, read around the pipeline (`unsafeDatabase`):
 *
 * - users' and conversations' `search_tokens` = `indexTokens(name)` (the search plugin's maintainer);
 * - `tenant_usage` documents per tenant and limited collection = the tenant's documents, live and
 *   soft-deleted (what the quota counts, docs/multi-tenancy.md "Quotas");
 * - each message's `thread.reply_count` = its live replies;
 * - each conversation's `last_message` = its newest live message (by `created_at`, then `_id`);
 * - every cached read made during the sequence, on BOTH instances = the same read uncached, once the
 *   other instance has received every invalidation published on the bus (the documented bound for
 *   in-process copies, docs/caching.md "Staleness guarantees"), polled against a deadline.
 *
 * Each sequence starts from empty tenants, so a counterexample replays and shrinks on its own. All
 * sequences run (mismatches are counted by kind), then the first failing one is shrunk. The seed
 * is printed; `CAAS_DB_PROPERTY_SEED` replays it, `CAAS_DB_FUZZ_RUNS` sets the number of sequences
 * (200 by default, 10,000 in `pnpm fuzz:derived`).
 */

import { type CacheOptions, type CachePlugin, createCache } from '@caas-db/cache';
import { BSON, cacheTags, createDataClient, createDataLayer, type DataLayer, type Document, isCaasDbError, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createSearch, indexTokens } from '@caas-db/search';
import { createTenancy, type IsolationViolation, type Tenancy } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RUNS = Number(process.env.CAAS_DB_FUZZ_RUNS ?? 200);
const SECRET = 'derived-state-property-cursor-secret!';
/** Collections with a document limit: their `tenant_usage` counters are maintained and checked. */
const LIMITED = ['users', 'messages', 'settings'] as const;
/** The generous deadline for the bus itself (the documented bound is < 1 s). */
const DEADLINE_MS = 10_000;

// Every cached method with a 60 s TTL; cached "not found" results too (the 2 s default would let a
// missed invalidation of a negative entry heal on its own before the check).
const methods: CacheOptions['methods'] = {
  'users.findById': { ttlMS: 60_000, negativeTtlMS: 60_000 },
  'users.findByExternalId': { ttlMS: 60_000, negativeTtlMS: 60_000 },
  'messages.findByConversation': { ttlMS: 60_000, negativeTtlMS: 60_000 },
  'conversations.listForUser': { ttlMS: 60_000, negativeTtlMS: 60_000 },
};

interface Instance {
  data: DataLayer;
  cache: CachePlugin;
  tenancy: Tenancy;
  redis: Redis;
}

const clientA = createTestClient();
const clientB = createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName(), monitoring: { wire: true } });
const violations: IsolationViolation[] = [];

function instance(client: typeof clientA, batching: boolean): Instance {
  const redis = new Redis(testEnvironment().redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
  redis.on('error', () => undefined);
  // A generous Redis timeout, as in packages/cache/test: on a loaded machine the 50 ms default turns calls into failures.
  const cache = createCache({ redis, prefix: `${testDatabaseName()}:`, methods, redisTimeoutMS: 5000 });
  const tenancy = createTenancy({
    requireActiveTenant: false,
    quotas: { limits: { documents: { users: 1000, messages: 1000, settings: 1000 } } },
  });
  const data = createDataLayer({
    client,
    cursorSecret: SECRET,
    plugins: [tenancy, createSearch(), cache],
    // The second instance coalesces message sends (unordered insertMany): the other insert path.
    ...(batching && { batching: { messages: true } }),
  });
  return { data, cache, tenancy, redis };
}

const instances = [instance(clientA, false), instance(clientB, true)] as const;
/** The same reads without a cache: what every cached read must return. */
const plain = createDataLayer({
  client: clientA,
  cursorSecret: SECRET,
  plugins: [createTenancy({ requireActiveTenant: false, audit: 'off' })],
});
const db = () => unsafeDatabase(clientA);
/** A driver of its own, for resetting the tenants between sequences (multi-tenant deletes the auditor would report). */
const janitor = new MongoClient(testEnvironment().mongo.uri);
const TENANTS = ['derived-a', 'derived-b', 'derived-c'] as const;

// ---- generators ----------------------------------------------------------------------------------
const USER_IDS = 5; // per tenant: 0 and 1 exist at the start, the others only if a write creates them
const EXTERNAL_IDS = 6;
const NAMES = ['Ada Lovelace', 'Grace Hopper', 'Zoë Saldaña', '我们星期五去咖啡馆', 'Straße Müller', 'ΣΊΣΥΦΟΣ x', 'al', 'Ada  ada-Ada'];
const external = (index: number) => `e${index}`;

const userRef = fc.nat({ max: USER_IDS - 1 });
const externalRef = fc.nat({ max: EXTERNAL_IDS - 1 });
const name = fc.constantFrom(...NAMES);
const messageRef = fc.nat({ max: 7 });
const newUser = fc.record({ user: fc.option(userRef, { nil: undefined }), ext: externalRef, name });
type NewUser = { user: number | undefined; ext: number; name: string };

const patch: fc.Arbitrary<Document> = fc.oneof(
  name.map((value) => ({ profile: { display_name: value } })),
  externalRef.map((ext) => ({ external_id: external(ext) })),
  fc.constantFrom('online', 'away', 'dnd').map((status) => ({ profile: { status } })),
  fc.tuple(name, externalRef).map(([value, ext]) => ({ external_id: external(ext), profile: { display_name: value, status: 'away' } })),
  fc.constant({ settings: { notifications: false } }),
  // The derived field itself, written by a caller: the maintainer must keep it equal to the name anyway.
  fc.constant({ search_tokens: ['w:stale'] }),
);
const update: fc.Arbitrary<Document> = fc.oneof(
  name.map((value) => ({ $set: { 'profile.display_name': value } })),
  name.map((value) => ({ $set: { profile: { display_name: value, status: 'online' } } })),
  externalRef.map((ext) => ({ $set: { external_id: external(ext) } })),
  fc.constant({ $set: { 'profile.status': 'dnd' } }),
  name.map((value) => ({ $set: { 'profile.display_name': value }, $unset: { 'profile.avatar_url': '' } })),
  fc.constant({ $unset: { 'profile.display_name': '' } }),
  fc.constant({ $unset: { search_tokens: '' } }),
);
type BulkItem =
  | ({ type: 'insert' } & NewUser)
  | { type: 'update'; user: number; patch: Document }
  | { type: 'updateWith'; user: number; update: Document }
  | { type: 'delete'; user: number };
const bulkItem: fc.Arbitrary<BulkItem> = fc.oneof(
  newUser.map((input) => ({ type: 'insert' as const, ...input })),
  fc.record({ type: fc.constant('update' as const), user: userRef, patch }),
  fc.record({ type: fc.constant('updateWith' as const), user: userRef, update }),
  fc.record({ type: fc.constant('delete' as const), user: userRef }),
);

type Write =
  | ({ kind: 'users.create' } & NewUser)
  | { kind: 'users.createMany'; inputs: NewUser[]; ordered: boolean }
  | { kind: 'users.bulkWrite'; items: BulkItem[]; ordered: boolean }
  | { kind: 'users.upsert'; ext: number; name: string }
  | { kind: 'users.update'; user: number; patch: Document }
  | { kind: 'users.updateWith'; user: number; update: Document }
  | { kind: 'users.delete' | 'users.softDelete' | 'users.restore'; user: number }
  | { kind: 'settings.set'; key: string; value: string; user: number | undefined }
  | { kind: 'messages.create'; conversation: number; sender: number; parent: number | undefined; preview: boolean; chooseId: boolean }
  | { kind: 'messages.resend'; sent: number }
  | { kind: 'conversations.rename'; conversation: number; name: string | undefined }
  | { kind: 'messages.softDelete' | 'messages.restore'; message: number }
  | { kind: 'messages.addReaction'; message: number; user: number; emoji: string }
  | { kind: 'messages.markAsRead'; message: number; user: number };
const write: fc.Arbitrary<Write> = fc.oneof(
  newUser.map((input) => ({ kind: 'users.create' as const, ...input })),
  fc.record({
    kind: fc.constant('users.createMany' as const),
    inputs: fc.array(newUser, { minLength: 1, maxLength: 3 }),
    ordered: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('users.bulkWrite' as const),
    items: fc.array(bulkItem, { minLength: 1, maxLength: 4 }),
    ordered: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('users.upsert' as const), ext: externalRef, name }),
  fc.record({ kind: fc.constant('users.update' as const), user: userRef, patch }),
  fc.record({ kind: fc.constant('users.updateWith' as const), user: userRef, update }),
  fc.record({ kind: fc.constantFrom('users.delete' as const, 'users.softDelete' as const, 'users.restore' as const), user: userRef }),
  fc.record({
    kind: fc.constant('settings.set' as const),
    key: fc.constantFrom('theme', 'locale'),
    value: fc.constantFrom('a', 'b'),
    user: fc.option(userRef, { nil: undefined }),
  }),
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('messages.create' as const),
      conversation: fc.nat({ max: 1 }),
      sender: fc.nat({ max: 1 }),
      parent: fc.option(messageRef, { nil: undefined }),
      preview: fc.boolean(),
      chooseId: fc.boolean(),
    }),
  },
  fc.record({ kind: fc.constant('messages.resend' as const), sent: fc.nat({ max: 3 }) }),
  fc.record({
    kind: fc.constant('conversations.rename' as const),
    conversation: fc.nat({ max: 1 }),
    name: fc.option(name, { nil: undefined }),
  }),
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constantFrom('messages.softDelete' as const, 'messages.restore' as const), message: messageRef }),
  },
  fc.record({ kind: fc.constant('messages.addReaction' as const), message: messageRef, user: userRef, emoji: fc.constantFrom('👍', '🎉') }),
  fc.record({ kind: fc.constant('messages.markAsRead' as const), message: messageRef, user: userRef }),
);

type ReadMethod = 'users.findById' | 'users.findByExternalId' | 'messages.findByConversation' | 'conversations.listForUser';
interface Read {
  method: ReadMethod;
  arg: number;
  limit: number | undefined;
}
const read: fc.Arbitrary<Read> = fc.record({
  method: fc.constantFrom<ReadMethod>(
    'users.findById',
    'users.findByExternalId',
    'messages.findByConversation',
    'conversations.listForUser',
  ),
  arg: fc.nat({ max: USER_IDS - 1 }),
  limit: fc.option(fc.constant(2), { nil: undefined }),
});

interface Step {
  tenant: number;
  instance: number;
  /** Cached reads before the write, each on either instance: they fill the entries the writes must invalidate. */
  reads: Array<{ instance: number; read: Read }>;
  write: Write;
}
const step: fc.Arbitrary<Step> = fc.record({
  tenant: fc.nat({ max: 2 }),
  instance: fc.nat({ max: 1 }),
  reads: fc.array(fc.record({ instance: fc.nat({ max: 1 }), read }), { maxLength: 2 }),
  write,
});
const sequence = fc.record({ tenants: fc.integer({ min: 2, max: 3 }), steps: fc.array(step, { minLength: 1, maxLength: 8 }) });
type Sequence = { tenants: number; steps: Step[] };

// ---- running a sequence ----------------------------------------------------------------------------
interface TenantState {
  id: string;
  users: ObjectId[];
  conversations: ObjectId[];
  /** Messages in the order they were created (those whose create returned). */
  messages: ObjectId[];
  /** The conversation of each message, by id. */
  conversationOf: Map<string, ObjectId>;
  /** Inputs of creates with a caller-chosen `_id`, for re-sends. */
  sent: Document[];
}

interface Mismatch {
  kind: string;
  tenant: string;
  detail: string;
}

const outcomes: Record<string, number> = {};
const convergenceMS: number[] = [];

const userInput = (state: TenantState, input: NewUser): Document => ({
  ...(input.user !== undefined && { _id: state.users[input.user] }),
  external_id: external(input.ext),
  profile: { display_name: input.name },
});

async function runWrite(state: TenantState, layer: DataLayer, operation: Write): Promise<void> {
  const repositories = layer.forTenant(state.id);
  const { users, messages } = repositories;
  const message = (index: number) => state.messages[index % Math.max(1, state.messages.length)] ?? new ObjectId();
  switch (operation.kind) {
    case 'users.create':
      await users.create(userInput(state, operation) as never);
      return;
    case 'users.createMany':
      await users.createMany(operation.inputs.map((input) => userInput(state, input)) as never, { ordered: operation.ordered });
      return;
    case 'users.bulkWrite':
      await users.bulkWrite(
        operation.items.map((item) => {
          switch (item.type) {
            case 'insert':
              return { insert: userInput(state, item) as never };
            case 'update':
              return { update: { id: state.users[item.user] as ObjectId, patch: item.patch } };
            case 'updateWith':
              return { updateWith: { id: state.users[item.user] as ObjectId, update: item.update } };
            default:
              return { delete: { id: state.users[item.user] as ObjectId } };
          }
        }),
        { ordered: operation.ordered },
      );
      return;
    case 'users.upsert':
      await users.upsert({ external_id: external(operation.ext) }, {
        external_id: external(operation.ext),
        profile: { display_name: operation.name },
      } as never);
      return;
    case 'users.update':
      await users.update(state.users[operation.user] as ObjectId, operation.patch);
      return;
    case 'users.updateWith':
      await users.updateWith(state.users[operation.user] as ObjectId, operation.update);
      return;
    case 'users.delete':
      await users.delete(state.users[operation.user] as ObjectId);
      return;
    case 'users.softDelete':
      await users.softDelete(state.users[operation.user] as ObjectId);
      return;
    case 'users.restore':
      await users.restore(state.users[operation.user] as ObjectId);
      return;
    case 'settings.set':
      await repositories.settings.set(
        operation.key,
        operation.value,
        operation.user === undefined ? undefined : state.users[operation.user],
      );
      return;
    case 'messages.create': {
      // A reply goes to its parent's conversation (it is refused when the parent is not live).
      const parent = operation.parent === undefined || state.messages.length === 0 ? undefined : message(operation.parent);
      const conversation =
        (parent && state.conversationOf.get(String(parent))) ?? (state.conversations[operation.conversation] as ObjectId);
      const input: Document = {
        ...(operation.chooseId && { _id: new ObjectId() }),
        conversation_id: conversation,
        sender_id: state.users[operation.sender],
        content: {
          type: 'text',
          encrypted_data: `ZGF0YQ${state.messages.length}`,
          ...(operation.preview && { encrypted_preview: `cHJldmlldw${state.messages.length}` }),
        },
        ...(parent && { thread: { parent_id: parent } }),
      };
      if (operation.chooseId) state.sent.push(input);
      const stored = await messages.create(input as never);
      state.messages.push(stored._id);
      state.conversationOf.set(String(stored._id), conversation);
      return;
    }
    case 'messages.resend': {
      const input = state.sent[operation.sent % Math.max(1, state.sent.length)];
      if (!input) return;
      const stored = await messages.create(input as never);
      if (!state.messages.some((id) => id.equals(stored._id))) state.messages.push(stored._id);
      state.conversationOf.set(String(stored._id), stored.conversation_id);
      return;
    }
    case 'conversations.rename': {
      const conversation = state.conversations[operation.conversation] as ObjectId;
      if (operation.name === undefined) await repositories.conversations.updateWith(conversation, { $unset: { 'metadata.name': '' } });
      else await repositories.conversations.update(conversation, { metadata: { name: operation.name } });
      return;
    }
    case 'messages.softDelete':
      await messages.softDelete(message(operation.message));
      return;
    case 'messages.restore':
      await messages.restore(message(operation.message));
      return;
    case 'messages.addReaction':
      await messages.addReaction(message(operation.message), state.users[operation.user] as ObjectId, operation.emoji);
      return;
    case 'messages.markAsRead':
      await messages.markAsRead(message(operation.message), state.users[operation.user] as ObjectId);
      return;
  }
}

/** A cached read's key, and the read itself on a data layer. */
function readOf(state: TenantState, spec: Read): { key: string; run: (layer: DataLayer) => Promise<unknown> } {
  const options = spec.limit === undefined ? {} : { limit: spec.limit };
  const key = `${state.id} ${spec.method}(${spec.arg}${spec.limit === undefined ? '' : `, limit ${spec.limit}`})`;
  const user = state.users[spec.arg] as ObjectId;
  const conversation = state.conversations[spec.arg % state.conversations.length] as ObjectId;
  const run = (layer: DataLayer): Promise<unknown> => {
    const repositories = layer.forTenant(state.id);
    switch (spec.method) {
      case 'users.findById':
        return repositories.users.findById(user);
      case 'users.findByExternalId':
        return repositories.users.findByExternalId(external(spec.arg % EXTERNAL_IDS));
      case 'messages.findByConversation':
        return repositories.messages.findByConversation(conversation, options);
      default:
        return repositories.conversations.listForUser(user, options);
    }
  };
  return { key, run };
}

const encode = (value: unknown) => BSON.EJSON.stringify({ value }, { relaxed: false });

function outcome(name: string): void {
  outcomes[name] = (outcomes[name] ?? 0) + 1;
}

async function seedTenant(state: TenantState): Promise<void> {
  const repositories = instances[0].data.forTenant(state.id);
  const [owner, member] = state.users as [ObjectId, ObjectId];
  const [group, direct] = [new ObjectId(), new ObjectId()];
  const participant = (user: ObjectId, role: 'owner' | 'member') => ({
    user_id: user,
    role,
    joined_at: new Date(),
    settings: { muted: false, pinned: false },
  });
  const [first, second] = [owner, member].map(String).sort();
  await Promise.all([
    repositories.users.createMany([
      { _id: owner, external_id: external(0), profile: { display_name: 'Ada Lovelace' } },
      { _id: member, external_id: external(1), profile: { display_name: 'Grace Hopper' } },
    ] as never),
    repositories.conversations.createMany([
      {
        _id: group,
        type: 'group',
        dedupe_key: `group:${String(group)}`,
        participants: [participant(owner, 'owner'), participant(member, 'member')],
        metadata: { name: 'Launch Team Friday' },
      },
      {
        _id: direct,
        type: 'direct',
        dedupe_key: `direct:${first}:${second}`,
        participants: [participant(owner, 'member'), participant(member, 'member')],
      },
    ] as never),
  ]);
  state.conversations.push(group, direct);
  const message = await repositories.messages.create({
    conversation_id: group,
    sender_id: owner,
    content: { type: 'text', encrypted_data: 'Zmlyc3Q', encrypted_preview: 'cHJldmlldw' },
  });
  state.messages.push(message._id);
  state.conversationOf.set(String(message._id), group);
}

const isLive = (document: Document) => document.deleted_at === null || document.deleted_at === undefined;

/** Every derived value of a tenant against its recomputation from the stored documents. */
async function derivedMismatches(state: TenantState): Promise<Mismatch[]> {
  const tenant = state.id;
  const found: Mismatch[] = [];
  const mismatch = (kind: string, detail: string) => found.push({ kind, tenant, detail });
  const [users, conversations, messages, settings, usage] = await Promise.all([
    db().collection('users').find({ tenant_id: tenant }).toArray(),
    db().collection('conversations').find({ tenant_id: tenant }).toArray(),
    db().collection('messages').find({ tenant_id: tenant }).toArray(),
    db().collection('settings').find({ tenant_id: tenant }).toArray(),
    instances[0].tenancy.usage?.usageOf(tenant),
  ]);
  for (const [collection, documents, field] of [
    ['users', users, 'profile'],
    ['conversations', conversations, 'metadata'],
  ] as const) {
    for (const document of documents) {
      const nameValue = (document[field] as Document | undefined)?.[field === 'profile' ? 'display_name' : 'name'];
      const expected = typeof nameValue === 'string' ? indexTokens(nameValue) : [];
      if (encode(document.search_tokens) !== encode(expected))
        mismatch(
          `${collection}.search_tokens`,
          `${String(document._id)} named ${JSON.stringify(nameValue)}: ${JSON.stringify(document.search_tokens)}`,
        );
    }
  }
  const stored = { users: users.length, messages: messages.length, settings: settings.length };
  for (const collection of LIMITED) {
    const recorded = usage?.[collection]?.documents ?? 0;
    if (recorded !== stored[collection])
      mismatch(`tenant_usage.${collection}.documents`, `recorded ${recorded}, stored ${stored[collection]} (live and soft-deleted)`);
  }
  for (const parent of messages) {
    const live = messages.filter((reply) => isLive(reply) && (reply.thread as Document | undefined)?.parent_id?.equals(parent._id)).length;
    const count = (parent.thread as Document | undefined)?.reply_count ?? 0;
    if (count !== live) mismatch('messages.thread.reply_count', `${String(parent._id)}: reply_count ${count}, live replies ${live}`);
  }
  for (const conversation of conversations) {
    const [newest] = messages
      .filter((message) => isLive(message) && (message.conversation_id as ObjectId).equals(conversation._id as ObjectId))
      .sort((a, b) => (b.created_at as Date).getTime() - (a.created_at as Date).getTime() || (String(b._id) > String(a._id) ? 1 : -1));
    const expected = newest && {
      message_id: newest._id,
      content_preview: (newest.content as Document).encrypted_preview ?? '',
      sender_id: newest.sender_id,
      sent_at: newest.created_at,
    };
    if (encode(conversation.last_message) !== encode(expected))
      mismatch(
        'conversations.last_message',
        `${String(conversation._id)}: ${encode(conversation.last_message)}, newest live ${encode(expected)}`,
      );
  }
  return found;
}

/** True once each instance has received every invalidation the other published. */
const lost = [0, 0];
function busSettled(): boolean {
  const [a, b] = instances.map((each) => each.cache.stats().invalidations) as [
    ReturnType<CachePlugin['stats']>['invalidations'],
    ReturnType<CachePlugin['stats']>['invalidations'],
  ];
  return b.remote >= a.local - a.failed - (lost[0] ?? 0) && a.remote >= b.local - b.failed - (lost[1] ?? 0);
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every cached read of the sequence, on both instances, against the uncached read. */
async function cacheMismatches(
  reads: Map<string, { state: TenantState; run: (layer: DataLayer) => Promise<unknown> }>,
): Promise<Mismatch[]> {
  const expected = new Map<string, string>(
    await Promise.all([...reads].map(async ([key, entry]) => [key, encode(await entry.run(plain))] as const)),
  );
  const started = Date.now();
  for (;;) {
    // A round of reads that starts once the bus has delivered every invalidation must see no stale
    // value: whatever it loads, it loads after the invalidations were applied.
    const settledBefore = busSettled();
    const checks = await Promise.all(
      [...reads].flatMap(([key, entry]) =>
        instances.map(async (each, index): Promise<Mismatch | undefined> => {
          const actual = encode(await entry.run(each.data));
          if (actual === expected.get(key)) return undefined;
          return {
            kind: `cache ${key.split(' ')[1]?.split('(')[0]} on instance ${'AB'[index]}`,
            tenant: entry.state.id,
            detail: `${key}: cached ${actual}, uncached ${expected.get(key)}`,
          };
        }),
      ),
    );
    const stale = checks.filter((check): check is Mismatch => check !== undefined);
    const now = Date.now();
    if (stale.length === 0) {
      convergenceMS.push(now - started);
      return [];
    }
    if (settledBefore || now - started > DEADLINE_MS) return stale;
    await pause(5);
  }
}

async function runSequence(input: Sequence): Promise<Mismatch[]> {
  await reset();
  const states: TenantState[] = Array.from({ length: input.tenants }, (_, index) => ({
    id: TENANTS[index] as string,
    users: Array.from({ length: USER_IDS }, () => new ObjectId()),
    conversations: [],
    messages: [],
    conversationOf: new Map(),
    sent: [],
  }));
  await Promise.all(states.map(seedTenant));
  const reads = new Map<string, { state: TenantState; run: (layer: DataLayer) => Promise<unknown> }>();
  const mismatches: Mismatch[] = [];
  for (const { tenant, instance: writer, reads: before, write: operation } of input.steps) {
    const state = states[tenant % states.length] as TenantState;
    for (const { instance: reader, read: spec } of before) {
      const { key, run } = readOf(state, spec);
      reads.set(key, { state, run });
      await run((instances[reader] as Instance).data);
    }
    try {
      await runWrite(state, (instances[writer] as Instance).data, operation);
      outcome(`${operation.kind} ok`);
    } catch (error) {
      if (!isCaasDbError(error))
        mismatches.push({
          kind: `untyped error from ${operation.kind}`,
          tenant: state.id,
          detail: String((error as Error)?.stack ?? error),
        });
      outcome(`${operation.kind} ${isCaasDbError(error) ? error.code : 'untyped'}`);
    }
  }
  for (const found of await Promise.all(states.map(derivedMismatches))) mismatches.push(...found);
  mismatches.push(...(await cacheMismatches(reads)));
  return mismatches;
}

/**
 * Starts a sequence from nothing: the pool's documents are deleted and its quota counters zeroed
 * around the data layer, and its cache entries dropped on both instances (L1 through the bus) and
 * in Redis. Reusing three tenant ids keeps each sequence from binding new tenants (every
 * `forTenant` of a new tenant builds its repositories), and a sequence replays alone.
 */
async function reset(): Promise<void> {
  const database = janitor.db(testDatabaseName());
  const pool = { tenant_id: { $in: [...TENANTS] } };
  await Promise.all([
    ...['users', 'conversations', 'messages', 'settings'].map((collection) => database.collection(collection).deleteMany(pool)),
    database.collection('tenant_usage').updateMany(pool, { $set: { documents: 0, bytes: 0 } }),
    instances[0].cache.cache.invalidate(
      TENANTS.flatMap((tenant) => ['users', 'conversations', 'messages'].map((collection) => cacheTags.collection(tenant, collection))),
    ),
  ]);
  const deadline = Date.now() + DEADLINE_MS;
  while (!busSettled()) {
    if (Date.now() > deadline) throw new Error('the invalidation bus did not deliver the reset');
    await pause(2);
  }
}

beforeAll(async () => {
  for (const each of instances) each.tenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
  await instances[0].data.syncIndexes();
  const ready = () => waitFor(() => instances.every((each) => each.redis.status === 'ready'), { what: 'redis ready' });
  await ready();
  // Each instance is subscribed once an invalidation the other publishes reaches it; the messages
  // published before that were lost, and are counted as such for `busSettled`.
  for (const [from, to] of [
    [0, 1],
    [1, 0],
  ] as const) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const received = instances[to].cache.stats().invalidations.remote;
      await instances[from].cache.cache.invalidate(['derived-state:handshake']);
      const waitUntil = Date.now() + 200;
      while (instances[to].cache.stats().invalidations.remote === received && Date.now() < waitUntil) await pause(5);
      if (instances[to].cache.stats().invalidations.remote > received) break;
      if (Date.now() > deadline) throw new Error('the invalidation bus did not connect');
    }
    lost[from] = instances[from].cache.stats().invalidations.local - instances[to].cache.stats().invalidations.remote;
  }
});

afterAll(async () => {
  await janitor.close();
  for (const each of instances) await each.cache.close();
  for (const each of instances) each.redis.disconnect();
  await clientB.close();
});

describe(`derived state (property, ${RUNS} random write sequences by 2-3 tenants through two instances)`, () => {
  it('equals its recomputation from the source documents; cached reads equal uncached ones on both instances', {
    timeout: 60_000 + RUNS * 1000,
  }, async () => {
    const seedValue = Number(process.env.CAAS_DB_PROPERTY_SEED ?? Date.now() % 2 ** 31);
    process.stdout.write(`derived-state property seed: ${seedValue} (replay with CAAS_DB_PROPERTY_SEED=${seedValue})\n`);
    const started = Date.now();
    // Every sequence runs to the end, and the sequences with each kind of mismatch are counted...
    const byKind: Record<string, number> = {};
    let firstFailing: number | undefined;
    let sequences = 0;
    await fc.assert(
      fc.asyncProperty(sequence, async (input) => {
        const mismatches = await runSequence(input);
        for (const kind of new Set(mismatches.map((each) => each.kind))) byKind[kind] = (byKind[kind] ?? 0) + 1;
        if (mismatches.length > 0) firstFailing ??= sequences;
        sequences += 1;
        if (sequences % 1000 === 0) process.stdout.write(`derived-state property: ${sequences} sequences, ${Date.now() - started} ms\n`);
      }),
      { numRuns: RUNS, seed: seedValue },
    );
    const elapsed = Date.now() - started;
    const sorted = [...convergenceMS].sort((a, b) => a - b);
    const stats = instances.map((each) => each.cache.stats());
    process.stdout.write(
      `derived-state property: ${sequences} sequences in ${elapsed} ms; sequences with mismatches, by kind: ${JSON.stringify(byKind)}; ` +
        `cached reads on both instances agreed with uncached ones after p50 ${sorted[Math.floor(sorted.length / 2)] ?? 0} ms, ` +
        `max ${sorted.at(-1) ?? 0} ms; cache hits ${stats.map((each) => each.l1.hits + each.l2.hits).join('/')}, ` +
        `auditor violations ${violations.length}, failed invalidations ${stats.map((each) => each.invalidations.failed).join('/')}\n` +
        `write outcomes ${JSON.stringify(Object.fromEntries(Object.entries(outcomes).sort()))}\n`,
    );
    // ...then the first failing one is replayed and shrunk to a minimal counterexample.
    let shrunk = '';
    if (firstFailing !== undefined) {
      let last: Mismatch[] = [];
      try {
        await fc.assert(
          fc.asyncProperty(sequence, async (input) => {
            const mismatches = await runSequence(input);
            if (mismatches.length === 0) return;
            last = mismatches;
            throw new Error(`mismatches: ${[...new Set(mismatches.map((each) => each.kind))].join(', ')}`);
          }),
          { seed: seedValue, path: String(firstFailing) },
        );
      } catch (error) {
        shrunk = `${error instanceof Error ? error.message.split('\n\nHint')[0] : String(error)}\nIts mismatches:\n${last
          .map((each) => `  [${each.kind}] ${each.tenant}: ${each.detail}`)
          .join('\n')}`;
        process.stdout.write(`derived-state property: ${shrunk}\n`);
      }
    }
    expect(byKind, shrunk).toEqual({});
    expect(violations).toEqual([]);
    // Not vacuous: the cached reads were served from the cache, and writes went through.
    expect(stats.reduce((total, each) => total + each.l1.hits + each.l2.hits, 0)).toBeGreaterThan(0);
    expect(Object.entries(outcomes).filter(([key]) => key.endsWith(' ok')).length).toBeGreaterThan(5);
  });
});
