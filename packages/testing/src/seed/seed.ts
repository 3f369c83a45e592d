import { type CaasDbError, type DataLayer, type Document, DuplicateKeyError, type ObjectId, parseConfig } from '@caas-db/core';
import { z } from 'zod';
import { SeededRandom, zipfSampler, zipfSplit } from './random.js';

const seedOptionsSchema = z.strictObject({
  tenants: z.number().int().min(1).max(10_000),
  usersPerTenant: z.number().int().min(2).max(1_000_000),
  conversations: z.number().int().min(1).max(1_000_000),
  messagesPerConversation: z.number().min(0).max(100_000),
  zipf: z.number().min(0).max(4).optional(),
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  replyRatio: z.number().min(0).max(0.5).optional(),
  batchSize: z.number().int().min(1).max(10_000).optional(),
  tenantPrefix: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/)
    .optional(),
  onProgress: z.custom<(progress: SeedProgress) => void>((value) => typeof value === 'function').optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal).optional(),
});

/** Options of {@link seed}. */
export interface SeedOptions {
  /** How many tenants (each gets a `clients` record, so tenancy admits it). */
  tenants: number;
  usersPerTenant: number;
  /** Conversations per tenant: about 70% direct, the rest groups of 3 to 8. */
  conversations: number;
  /** The mean number of messages per conversation; spread over conversations by `zipf`. */
  messagesPerConversation: number;
  /**
   * Skew, as a Zipf exponent: conversation sizes and how often each user is picked follow rank^-zipf
   * (a few very active conversations and users, a long tail). 0 is uniform. @default 1.1
   */
  zipf?: number;
  /** The same seed gives the same tenants, users, conversations, messages and ids. @default 1 */
  seed?: number;
  /** Share of messages that are thread replies (each one through `messages.create`). @default 0.02 */
  replyRatio?: number;
  /** Documents per insert. @default 1000 */
  batchSize?: number;
  /** Tenant ids are `<prefix>-0001`, ... @default 'seed' */
  tenantPrefix?: string;
  /** Called after every batch. */
  onProgress?: (progress: SeedProgress) => void;
  /** Stops at the next batch boundary (the result says `interrupted`). */
  signal?: AbortSignal;
}

/** Progress of a seed run. */
export interface SeedProgress {
  /** Documents written so far (users, conversations, messages). */
  documents: number;
  /** Documents the run will write in total. */
  total: number;
  tenant: string;
  phase: 'users' | 'conversations' | 'messages' | 'replies' | 'last messages';
}

/** What a seed run wrote. */
export interface SeedResult {
  tenants: string[];
  users: number;
  conversations: number;
  /** Messages, replies included (written by this run or found stored by an earlier one). */
  messages: number;
  replies: number;
  durationMS: number;
  /** Users, conversations and messages handled per second. */
  documentsPerSecond: number;
  /**
   * Users, conversations and messages of batched inserts that an earlier, interrupted run of the
   * same seed had already stored: skipped by `_id` (0 on a fresh database). They count in `users`,
   * `conversations` and `messages` too, so a resumed run reports what an uninterrupted one does.
   */
  existing: number;
  /** True when `signal` stopped it before the end. */
  interrupted: boolean;
  /** Milliseconds spent in each phase, over all tenants. */
  phases: Record<SeedProgress['phase'], number>;
}

// Every id and timestamp derives from this instant, so a seed gives the same data on every run.
const BASE_SECONDS = Date.UTC(2026, 0, 1) / 1000;

/**
 * Builds realistic CAAS data through the repositories, so it is valid by construction (schemas,
 * invariants, tenancy, quotas when the data layer has them): tenants with `clients` records,
 * users, direct and group conversations, messages with Zipf-skewed conversation sizes and senders,
 * thread replies, and each conversation's `last_message`. Deterministic by `seed` (ids included),
 * and fast: users, conversations and messages go in batched, unordered bulk inserts; replies and
 * each conversation's newest message through `messages.create` (so `reply_count` and
 * `last_message` are kept by the repository, as for live traffic, with no per-conversation
 * recount afterwards).
 *
 * Resumable: a run with the same options on a database where an earlier run was interrupted
 * (`signal`, a crash, Ctrl-C) skips every document already stored, by `_id`, and writes the rest,
 * ending with the data an uninterrupted run writes. Batched inserts skip stored ids per item;
 * replies and newest messages are re-sent through `create`, which is idempotent by `_id`.
 * @throws {ConfigError} for invalid options; nothing is written.
 * @throws {DuplicateKeyError} when a document clashes with stored data on a key other than `_id`
 * (the database holds other data under these tenant ids: pick another `tenantPrefix`).
 *
 * @example
 * ```ts
 * import { seed } from '@caas-db/testing';
 * const result = await seed(data, { tenants: 2, usersPerTenant: 50, conversations: 40, messagesPerConversation: 25, zipf: 1.1, seed: 7 });
 * ```
 */
export async function seed(data: DataLayer, options: SeedOptions): Promise<SeedResult> {
  parseConfig(seedOptionsSchema, options);
  const zipf = options.zipf ?? 1.1;
  const batchSize = options.batchSize ?? 1000;
  const replyRatio = options.replyRatio ?? 0.02;
  const prefix = options.tenantPrefix ?? 'seed';
  const random = new SeededRandom(options.seed ?? 1);
  const started = performance.now();
  const messagesPerTenant = Math.round(options.conversations * options.messagesPerConversation);
  const total = options.tenants * (options.usersPerTenant + options.conversations + messagesPerTenant);
  const result: SeedResult = {
    tenants: [],
    users: 0,
    conversations: 0,
    messages: 0,
    replies: 0,
    durationMS: 0,
    documentsPerSecond: 0,
    existing: 0,
    interrupted: false,
    phases: { users: 0, conversations: 0, messages: 0, replies: 0, 'last messages': 0 },
  };
  let phaseStarted = performance.now();
  const phaseDone = (phase: SeedProgress['phase']) => {
    const now = performance.now();
    result.phases[phase] += now - phaseStarted;
    phaseStarted = now;
  };
  const written = () => result.users + result.conversations + result.messages;
  const stopped = () => options.signal?.aborted ?? false;
  let clock = BASE_SECONDS;
  const nextId = () => {
    clock += 1;
    return random.objectId(clock);
  };

  for (let t = 1; t <= options.tenants && !stopped(); t += 1) {
    const tenant = `${prefix}-${String(t).padStart(4, '0')}`;
    result.tenants.push(tenant);
    const report = (phase: SeedProgress['phase']) => options.onProgress?.({ documents: written(), total, tenant, phase });
    // Looked up first: a resumed run must not rely on the unique index (a database whose indexes were never synced).
    if (!(await data.clients.findByTenantId(tenant))) {
      try {
        await data.clients.create({ tenant_id: tenant, name: `Seed tenant ${t}`, region: 'eu-west-1', plan: 'pro' });
      } catch (error) {
        if (!(error instanceof DuplicateKeyError)) throw error;
      }
    }
    const repositories = data.forTenant(tenant);
    phaseStarted = performance.now();

    // Users.
    const userIds: ObjectId[] = [];
    for (let start = 0; start < options.usersPerTenant && !stopped(); start += batchSize) {
      const count = Math.min(batchSize, options.usersPerTenant - start);
      const batch = Array.from({ length: count }, (_, offset) => {
        const _id = nextId();
        userIds.push(_id);
        const n = start + offset + 1;
        return { _id, external_id: `user-${n}`, profile: { display_name: `User ${n}` } };
      });
      result.existing += await insertResuming(repositories.users, batch);
      result.users += batch.length;
      report('users');
    }
    phaseDone('users');
    const pickUser = zipfSampler(userIds.length, zipf, random);

    // Conversations: distinct direct pairs where possible, groups otherwise.
    const pairs = new Set<string>();
    const members: ObjectId[][] = [];
    const conversationIds: ObjectId[] = [];
    for (let start = 0; start < options.conversations && !stopped(); start += batchSize) {
      const count = Math.min(batchSize, options.conversations - start);
      const batch = [];
      for (let index = 0; index < count; index += 1) {
        const _id = nextId();
        let participants: ObjectId[] = [];
        let type: 'direct' | 'group' = 'group';
        if (random.next() < 0.7) {
          for (let attempt = 0; attempt < 5; attempt += 1) {
            const a = userIds[pickUser()] as ObjectId;
            const b = userIds[random.int(userIds.length)] as ObjectId;
            const key = [a.toHexString(), b.toHexString()].sort().join(':');
            if (a.equals(b) || pairs.has(key)) continue;
            pairs.add(key);
            participants = [a, b];
            type = 'direct';
            break;
          }
        }
        if (type === 'group') {
          const size = Math.min(userIds.length, 3 + random.int(6));
          const chosen = new Map<string, ObjectId>();
          while (chosen.size < size) {
            const id = userIds[chosen.size === 0 ? pickUser() : random.int(userIds.length)] as ObjectId;
            chosen.set(id.toHexString(), id);
          }
          participants = [...chosen.values()];
        }
        members.push(participants);
        conversationIds.push(_id);
        const joinedAt = new Date(_id.getTimestamp().getTime());
        batch.push({
          _id,
          type,
          dedupe_key:
            type === 'direct'
              ? `direct:${participants
                  .map((id) => id.toHexString())
                  .sort()
                  .join(':')}`
              : `group:${_id.toHexString()}`,
          participants: participants.map((user_id, rank) => ({
            user_id,
            role: type === 'group' && rank === 0 ? ('owner' as const) : ('member' as const),
            joined_at: joinedAt,
            settings: { muted: false, pinned: false },
          })),
          metadata: type === 'group' ? { name: `Group ${start + index + 1}` } : {},
        });
      }
      result.existing += await insertResuming(repositories.conversations, batch);
      result.conversations += batch.length;
      report('conversations');
    }

    phaseDone('conversations');

    // Messages, sized by Zipf per conversation, interleaved in time across conversations.
    const sizes = zipfSplit(messagesPerTenant, conversationIds.length, zipf, random);
    // Each conversation's replies are taken out of its size; a conversation keeps at least one plain message.
    const remaining = sizes.map((size) => (size === 0 ? 0 : Math.max(1, size - Math.round(size * replyRatio))));
    // Each conversation's newest message is held back and sent last, through create: it sets
    // last_message as live traffic does (a bulk insert does not move it).
    const newest = remaining.map((left) => Math.min(1, left));
    for (let index = 0; index < remaining.length; index += 1) remaining[index] = (remaining[index] as number) - (newest[index] as number);
    let leftToPlace = remaining.reduce((a, b) => a + b, 0);
    const plain = leftToPlace + newest.reduce((a, b) => a + b, 0);
    const replies = messagesPerTenant - plain;
    const pickConversation = () => {
      // Proportional to what each conversation still has to receive.
      let target = random.int(leftToPlace);
      for (let index = 0; index < remaining.length; index += 1) {
        const left = remaining[index] as number;
        if (target < left) return index;
        target -= left;
      }
      return remaining.length - 1;
    };
    const bodies = (n: number) => ({
      type: 'text' as const,
      encrypted_data: `ct:${random.hex(48)}`,
      encrypted_preview: `pv:${n}:${random.hex(12)}`,
    });
    const senderOf = (conversation: number) => {
      const people = members[conversation] as ObjectId[];
      // The first participant talks most (owner or the popular side of a pair).
      return people[random.next() < 0.5 ? 0 : random.int(people.length)] as ObjectId;
    };
    const inserted: ObjectId[][] = conversationIds.map(() => []);
    const inFlight = new Set<Promise<void>>();
    let placed = 0;
    while (leftToPlace > 0 && !stopped()) {
      const count = Math.min(batchSize, leftToPlace);
      const batch = [];
      for (let index = 0; index < count; index += 1) {
        const conversation = pickConversation();
        remaining[conversation] = (remaining[conversation] as number) - 1;
        leftToPlace -= 1;
        const _id = nextId();
        (inserted[conversation] as ObjectId[]).push(_id);
        batch.push({
          _id,
          conversation_id: conversationIds[conversation] as ObjectId,
          sender_id: senderOf(conversation),
          content: bodies(placed + index),
        });
      }
      placed += batch.length;
      // A few inserts in flight keep the server busy while the next batch is built.
      const sending = insertResuming(repositories.messages, batch).then((existing) => {
        result.existing += existing;
        result.messages += batch.length;
        report('messages');
      });
      const tracked = sending.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
      if (inFlight.size >= 3) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    phaseDone('messages');

    // Thread replies, through create: they keep reply_count and last_message exact.
    const withMessages = inserted.map((ids, index) => ({ ids, index })).filter((entry) => entry.ids.length > 0);
    for (let start = 0; start < replies && withMessages.length > 0 && !stopped(); start += 64) {
      const count = Math.min(64, replies - start);
      await Promise.all(
        Array.from({ length: count }, (_, offset) => {
          const { ids, index } = withMessages[Math.min(withMessages.length - 1, Math.floor(random.next() * withMessages.length))] as {
            ids: ObjectId[];
            index: number;
          };
          const parent = ids[random.int(ids.length)] as ObjectId;
          return repositories.messages.create({
            _id: nextId(),
            conversation_id: conversationIds[index] as ObjectId,
            sender_id: senderOf(index),
            content: bodies(plain + start + offset),
            thread: { parent_id: parent },
          } as never);
        }),
      );
      result.messages += count;
      result.replies += count;
      report('replies');
    }

    phaseDone('replies');

    // Each conversation's newest message, after its replies, through create: it moves last_message.
    // Its body number follows the bulk ones, so ids and contents do not depend on where a run stopped.
    const last = newest.flatMap((count, index) => (count > 0 ? [index] : []));
    for (let start = 0; start < last.length && !stopped(); start += 32) {
      const chunk = last.slice(start, start + 32).map((conversation, offset) => ({
        _id: nextId(),
        conversation_id: conversationIds[conversation] as ObjectId,
        sender_id: senderOf(conversation),
        content: bodies(placed + start + offset),
      }));
      await Promise.all(chunk.map((message) => repositories.messages.create(message as never)));
      result.messages += chunk.length;
      report('last messages');
    }
    phaseDone('last messages');
  }
  result.interrupted = stopped();
  result.durationMS = performance.now() - started;
  result.documentsPerSecond = result.durationMS > 0 ? Math.round((written() / result.durationMS) * 1000) : 0;
  return result;
}

/** A repository's bulk write, as the seed uses it (inserts only). */
interface BulkInserter {
  bulkWrite(
    operations: never,
    options: { ordered?: boolean },
  ): Promise<{ failed: number; items: Array<{ status: string; error?: CaasDbError }> }>;
}

/**
 * Inserts a batch unordered, one outcome per document. A document whose `_id` is already stored
 * was written by an earlier run of the same seed (ids are deterministic): it is skipped, which is
 * what lets a rerun resume. A fresh run pays nothing for this (no read before the insert).
 * @returns how many documents were already stored.
 * @throws the first other failure, e.g. a clash on another unique key.
 */
async function insertResuming(repository: BulkInserter, documents: Document[]): Promise<number> {
  const summary = await repository.bulkWrite(documents.map((document) => ({ insert: document })) as never, { ordered: false });
  if (summary.failed === 0) return 0;
  let existing = 0;
  for (const item of summary.items) {
    if (item.status !== 'failed') continue;
    if (item.error instanceof DuplicateKeyError && '_id' in item.error.key) existing += 1;
    else throw item.error;
  }
  return existing;
}
