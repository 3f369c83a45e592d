/**
 * The fault-injection harness shared by the fault suite (test/faults/*.test.ts) and the soak
 * (scripts/soak.ts): a concurrent workload through the public API, a ledger of what every call
 * returned, fault injectors, and the invariants checked against the truth read over a direct
 * connection (`unsafeDatabase`). No vitest here: the soak runs it with tsx.
 */
import { Redis } from 'ioredis';
import type { Db, Document } from 'mongodb';
import { type CachePlugin, createCache } from '../../packages/cache/src/index.js';
import {
  CaasDbError,
  createDataClient,
  createDataLayer,
  type DataClient,
  type DataClientConfig,
  type DataLayer,
  ObjectId,
  type TenantRepositories,
} from '../../packages/core/src/index.js';
import { unsafeDatabase } from '../../packages/core/src/unsafe.js';
import { type MongoTestServer, type RedisTestServer, startTcpProxy, type TcpProxy, waitFor } from '../../packages/testing/src/index.js';

// ---------------------------------------------------------------------------------------------
// Small tools

/** A seeded PRNG (mulberry32): the same seed gives the same workload. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a run: `CAAS_DB_FAULT_SEED` when set, else a random one (printed with every violation). */
export function runSeed(): number {
  const given = process.env.CAAS_DB_FAULT_SEED;
  return given ? Number(given) : Math.floor(Math.random() * 2 ** 31);
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index -= 1) {
    const other = Math.floor(random() * (index + 1));
    [copy[index], copy[other]] = [copy[other] as T, copy[index] as T];
  }
  return copy;
}

/** A pause between two checks of a condition (never a wait for time to pass by itself). */
const tick = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `run` over `items` with at most `limit` calls in flight. */
async function inPool<T>(items: readonly T[], limit: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Retries a read of the truth while the server restarts under it (the unsafe driver has no retry). */
async function truthRead<T>(read: () => Promise<T>, timeoutMS = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMS;
  for (;;) {
    try {
      return await read();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await tick(50);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * The configuration of the application's client in the fault runs: a socket timeout (so a lost
 * response is noticed: the driver's default waits forever) far above the latency of a loaded
 * 2-CPU machine, and a retry budget a fault can outlast, so unknown outcomes reach the callers.
 */
export function faultClientConfig(uri: string, database: string, appName: string): DataClientConfig {
  return {
    uri,
    database,
    appName,
    pool: { maxSize: 40 },
    timeouts: { socketMS: 2500, connectMS: 2000, serverSelectionMS: 2500 },
    retry: { retries: 3, minDelayMS: 25, maxDelayMS: 400, maxElapsedMS: 4000 },
    // The isolation auditor watches the wire during the faults.
    monitoring: { wire: true },
  };
}

/** `host:port` of a single-host `mongodb://` URI. */
export function hostOf(uri: string): string {
  const match = /^mongodb:\/\/(?:[^@/]*@)?([^/?,]+)/.exec(uri);
  if (!match?.[1]) throw new Error(`cannot read a single host from ${uri}`);
  return match[1];
}

/** The application's client behind a TCP proxy, and a direct client and data layer for the truth. */
export interface FaultRig {
  proxy: TcpProxy;
  /** The application's client, through the proxy. */
  client: DataClient;
  /** A direct client: fixtures, recounts and the truth. */
  direct: DataClient;
  truth: DataLayer;
  /** Closes both clients and the proxy (the database is the caller's). */
  close(): Promise<void>;
}

/** Opens a {@link FaultRig} on `mongoUri` (a single host) and syncs the indexes of `database`. */
export async function openFaultRig(mongoUri: string, database: string, appName: string): Promise<FaultRig> {
  const proxy = await startTcpProxy(hostOf(mongoUri));
  const direct = createDataClient({
    uri: mongoUri,
    database,
    timeouts: { serverSelectionMS: 10_000 },
    retry: { retries: 10, minDelayMS: 50, maxDelayMS: 500, maxElapsedMS: 30_000 },
  });
  const truth = createDataLayer({ client: direct });
  const client = createDataClient(faultClientConfig(`mongodb://127.0.0.1:${proxy.port}/?directConnection=true`, database, appName));
  const close = async () => {
    await client.close();
    await direct.close();
    await proxy.stop();
  };
  try {
    await truth.syncIndexes();
  } catch (error) {
    await close();
    throw error;
  }
  return { proxy, client, direct, truth, close };
}

// ---------------------------------------------------------------------------------------------
// The workload

/** How much work one scenario does. */
export interface WorkloadSize {
  /** `messages.create` calls (half with a caller-chosen `_id`, re-sent after an unknown outcome). */
  creates: number;
  /** Conversations the creates are spread over. */
  conversations: number;
  /** Replies to one parent, all started at once. */
  replies: number;
  /** Reactions: every (message, user, emoji) key gets `opsPerKey` add/remove calls, in order. */
  reactions: { messages: number; users: number; emojis: number; opsPerKey: number };
  /** markAsRead storm: every user reads every message `repeats` times, plus a markDelivered per message and repeat. */
  storm: { messages: number; users: number; repeats: number };
  /** Calls in flight per load (the replies excepted). */
  concurrency: number;
}

/** The suite's load: 1,000 creates, 200 concurrent replies, 1,000 reactions, 1,000 markAsRead (+50 markDelivered). */
export const SUITE_WORKLOAD: WorkloadSize = {
  creates: 1000,
  conversations: 8,
  replies: 200,
  reactions: { messages: 10, users: 10, emojis: 5, opsPerKey: 2 },
  storm: { messages: 25, users: 20, repeats: 2 },
  concurrency: 16,
};

const EMOJIS = ['👍', '❤️', '😂', '🎉', '👀', '🙏', '🔥', '✅'];

/** The documents a workload runs against, created before the fault with no fault on. */
export interface Fixture {
  tenant: string;
  /** Token prefix of this run's message contents. */
  run: string;
  conversations: ObjectId[];
  parent: ObjectId;
  reactionTargets: ObjectId[];
  stormTargets: ObjectId[];
  users: ObjectId[];
  /** A participant of every conversation: the workload's sender (messages.create checks it). */
  sender: ObjectId;
}

export async function createFixture(truth: DataLayer, tenant: string, run: string, size: WorkloadSize): Promise<Fixture> {
  const repositories = truth.forTenant(tenant);
  const owner = new ObjectId();
  const users = Array.from({ length: Math.max(size.reactions.users, size.storm.users) }, () => new ObjectId());
  const conversations: ObjectId[] = [];
  for (let index = 0; index < size.conversations; index += 1) {
    conversations.push((await repositories.conversations.createDirect([owner, new ObjectId()])).conversation._id);
  }
  const post = (conversation: ObjectId, label: string) =>
    repositories.messages.create({
      conversation_id: conversation,
      sender_id: owner,
      content: { type: 'text', encrypted_data: `${run}:fixture:${label}`, encrypted_preview: label },
    });
  const first = conversations[0] as ObjectId;
  const parent = (await post(first, 'parent'))._id;
  const reactionTargets: ObjectId[] = [];
  for (let index = 0; index < size.reactions.messages; index += 1) reactionTargets.push((await post(first, `reactions-${index}`))._id);
  const stormTargets: ObjectId[] = [];
  for (let index = 0; index < size.storm.messages; index += 1) stormTargets.push((await post(first, `storm-${index}`))._id);
  return { tenant, run, conversations, parent, reactionTargets, stormTargets, users, sender: owner };
}

/** What one failed call reported. */
export interface Failure {
  code: string;
  unknown: boolean;
  message: string;
}

function failureOf(error: unknown): Failure {
  if (error instanceof CaasDbError) return { code: error.code, unknown: error.outcome === 'unknown', message: error.message };
  const name = error instanceof Error ? error.name : typeof error;
  return { code: `untyped ${name}`, unknown: false, message: error instanceof Error ? error.message : String(error) };
}

type Outcome = { ok: true } | { ok: false; failure: Failure };

interface CreateRecord {
  token: string;
  /** The caller's `_id` (the re-send protocol), or the id `create` returned. */
  id: ObjectId | undefined;
  callerId: boolean;
  reply: boolean;
  conversation: ObjectId;
  /** Every call made for this write, in order (re-sends after unknown outcomes included). */
  attempts: Outcome[];
}

interface ReactionOp {
  op: 'add' | 'remove';
  attempts: Outcome[];
}

interface Tally {
  resolved: number;
  unknown: number;
  rejected: number;
}

const emptyTally = (): Tally => ({ resolved: 0, unknown: 0, rejected: 0 });

/** Everything the callers saw, and what was seen to go wrong while the workload ran. */
export class Ledger {
  /** Public API calls made (re-sends included). */
  calls = 0;
  resolved = 0;
  rejected = 0;
  /** Rejections flagged `outcome: 'unknown'`. */
  unknown = 0;
  /** Calls re-sent by the caller after an unknown outcome. */
  resends = 0;
  /** Rejections by error code (`E_TIMEOUT (unknown)`, ...). */
  readonly errors = new Map<string, number>();
  readonly creates: CreateRecord[] = [];
  readonly reactions = new Map<string, ReactionOp[]>();
  readonly reads = new Map<string, Tally>();
  readonly delivered = new Map<string, Tally>();
  /** Violations seen while running (status regressions, untyped errors, failed reads). */
  readonly violations: string[] = [];
  /** Retry events of the application's client. */
  retries = 0;
  /** Planned calls of the workload (re-sends excepted), for progress. */
  planned = 0;
  /** Planned calls done. */
  done = 0;

  record(outcome: Outcome): void {
    this.calls += 1;
    if (outcome.ok) {
      this.resolved += 1;
      return;
    }
    this.rejected += 1;
    const { failure } = outcome;
    if (failure.unknown) this.unknown += 1;
    if (failure.code.startsWith('untyped'))
      this.violations.push(`an untyped error left the public API: ${failure.code}: ${failure.message}`);
    const key = `${failure.code}${failure.unknown ? ' (unknown)' : ''}`;
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }
}

async function call(ledger: Ledger, action: () => Promise<unknown>): Promise<Outcome> {
  let outcome: Outcome;
  try {
    await action();
    outcome = { ok: true };
  } catch (error) {
    outcome = { ok: false, failure: failureOf(error) };
  }
  ledger.record(outcome);
  return outcome;
}

/** Calls `action` again while it fails with an unknown outcome (it must be safe to re-send), at most `maxCalls` times. */
async function callUntilKnown(ledger: Ledger, action: () => Promise<unknown>, maxCalls = 12): Promise<Outcome[]> {
  const attempts: Outcome[] = [];
  for (;;) {
    const outcome = await call(ledger, action);
    attempts.push(outcome);
    if (outcome.ok || !outcome.failure.unknown || attempts.length >= maxCalls) return attempts;
    ledger.resends += 1;
  }
}

const statusRank: Record<string, number> = { sent: 0, delivered: 1, read: 2, deleted: 3 };
const DELIVERED_RANK = 1;

/**
 * Runs the four loads at once through `app` (the application's tenant-bound repositories) and
 * records every outcome in `ledger`. The replies all start together once `repliesStart` resolves
 * (the scenarios release them when the fault begins). Resolves when every call has settled.
 */
export async function runWorkload(
  app: TenantRepositories,
  fixture: Fixture,
  size: WorkloadSize,
  ledger: Ledger,
  random: () => number,
  repliesStart: Promise<void> = Promise.resolve(),
): Promise<void> {
  const { sender } = fixture;
  const stormCalls: Array<{ kind: 'read'; message: ObjectId; user: ObjectId } | { kind: 'delivered'; message: ObjectId }> = [];
  for (let repeat = 0; repeat < size.storm.repeats; repeat += 1) {
    for (const message of fixture.stormTargets) {
      stormCalls.push({ kind: 'delivered', message });
      for (const user of fixture.users.slice(0, size.storm.users)) stormCalls.push({ kind: 'read', message, user });
    }
  }
  const reactionKeys: Array<{ message: ObjectId; user: ObjectId; emoji: string; ops: Array<'add' | 'remove'> }> = [];
  for (const message of fixture.reactionTargets) {
    for (const user of fixture.users.slice(0, size.reactions.users)) {
      for (const emoji of EMOJIS.slice(0, size.reactions.emojis)) {
        const ops = Array.from({ length: size.reactions.opsPerKey }, (_, index) =>
          index === 0 || random() < 0.6 ? (random() < 0.8 ? 'add' : 'remove') : 'remove',
        ) as Array<'add' | 'remove'>;
        reactionKeys.push({ message, user, emoji, ops });
      }
    }
  }
  ledger.planned += size.creates + size.replies + reactionKeys.length * size.reactions.opsPerKey + stormCalls.length;

  const create = async (input: {
    _id?: ObjectId;
    token: string;
    conversation: ObjectId;
    reply: boolean;
    preview: string;
  }): Promise<void> => {
    const record: CreateRecord = {
      token: input.token,
      id: input._id,
      callerId: input._id !== undefined,
      reply: input.reply,
      conversation: input.conversation,
      attempts: [],
    };
    ledger.creates.push(record);
    const message = {
      ...(input._id && { _id: input._id }),
      conversation_id: input.conversation,
      sender_id: sender,
      content: { type: 'text' as const, encrypted_data: input.token, encrypted_preview: input.preview },
      ...(input.reply && { thread: { parent_id: fixture.parent } }),
    };
    const send = async () => {
      const stored = await app.messages.create(message);
      record.id = stored._id;
    };
    // The documented protocol: only a write with a caller-chosen _id is re-sent after an unknown outcome.
    record.attempts = input._id ? await callUntilKnown(ledger, send) : [await call(ledger, send)];
    ledger.done += 1;
  };

  const creates = async () => {
    const items = Array.from({ length: size.creates }, (_, index) => index);
    await inPool(items, size.concurrency, (index) =>
      create({
        ...(index % 2 === 0 && { _id: new ObjectId() }),
        token: `${fixture.run}:create:${index}`,
        conversation: fixture.conversations[index % fixture.conversations.length] as ObjectId,
        reply: false,
        preview: `m${index}`,
      }),
    );
  };

  const replies = async () => {
    await repliesStart;
    await Promise.all(
      Array.from({ length: size.replies }, (_, index) =>
        create({
          _id: new ObjectId(),
          token: `${fixture.run}:reply:${index}`,
          conversation: fixture.conversations[0] as ObjectId,
          reply: true,
          preview: `r${index}`,
        }),
      ),
    );
  };

  const reactions = async () => {
    await inPool(shuffled(reactionKeys, random), size.concurrency, async (key) => {
      const ops: ReactionOp[] = [];
      ledger.reactions.set(`${key.message}:${key.user}:${key.emoji}`, ops);
      for (const op of key.ops) {
        const record: ReactionOp = { op, attempts: [] };
        ops.push(record);
        record.attempts = await callUntilKnown(ledger, () =>
          op === 'add'
            ? app.messages.addReaction(key.message, key.user, key.emoji)
            : app.messages.removeReaction(key.message, key.user, key.emoji),
        );
        ledger.done += 1;
      }
    });
  };

  const storm = async () => {
    await inPool(shuffled(stormCalls, random), size.concurrency, async (entry) => {
      const tallyKey = entry.kind === 'read' ? `${entry.message}:${entry.user}` : String(entry.message);
      const tallies = entry.kind === 'read' ? ledger.reads : ledger.delivered;
      const tally = tallies.get(tallyKey) ?? emptyTally();
      tallies.set(tallyKey, tally);
      const outcome = await call(ledger, () =>
        entry.kind === 'read' ? app.messages.markAsRead(entry.message, entry.user) : app.messages.markDelivered(entry.message),
      );
      if (outcome.ok) tally.resolved += 1;
      else if (outcome.failure.unknown) tally.unknown += 1;
      else tally.rejected += 1;
      ledger.done += 1;
    });
  };

  await Promise.all([creates(), replies(), reactions(), storm()]);
}

/**
 * Watches the status of the storm's messages on the truth connection while the workload runs and
 * records any move backwards (sent → delivered → read only). Returns a stop function.
 */
export function watchStatuses(db: Db, fixture: Fixture, ledger: Ledger): () => Promise<void> {
  const seen = new Map<string, string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const documents = await db
          .collection('messages')
          .find({ _id: { $in: fixture.stormTargets } }, { projection: { status: 1 } })
          .toArray();
        for (const document of documents) {
          const id = String(document._id);
          const before = seen.get(id);
          const status = String(document.status);
          if (before !== undefined && (statusRank[status] ?? -1) < (statusRank[before] ?? -1)) {
            ledger.violations.push(`status regression on message ${id}: ${before} → ${status}`);
          }
          seen.set(id, status);
        }
      } catch {
        // The server may be down (restart scenario): the next sample tells.
      }
      await tick(25);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

// ---------------------------------------------------------------------------------------------
// Invariants

const presentAfter = (attempts: Outcome[]) => attempts.some((attempt) => attempt.ok);
const describeAttempts = (attempts: Outcome[]) =>
  attempts.map((attempt) => (attempt.ok ? 'ok' : `${attempt.failure.code}${attempt.failure.unknown ? '(unknown)' : ''}`)).join(' → ');

/**
 * Checks the invariants against the truth (`db`, a direct connection) and the data layer's own
 * recounts (`truth`, a data layer on the direct connection). Returns the violations, empty when
 * all hold.
 */
export async function checkInvariants(truth: DataLayer, db: Db, fixture: Fixture, ledger: Ledger): Promise<string[]> {
  const violations = [...ledger.violations];
  const repositories = truth.forTenant(fixture.tenant);
  const messages = await truthRead(() => db.collection('messages').find({ tenant_id: fixture.tenant }).toArray());
  const stored = new Map<string, Document[]>();
  for (const message of messages) {
    const token = String((message.content as Document | undefined)?.encrypted_data ?? '');
    stored.set(token, [...(stored.get(token) ?? []), message]);
  }

  // Creates and replies: resolved → stored exactly once; never twice; rejected → absent unless unknown.
  const known = new Set<string>();
  for (const record of ledger.creates) {
    known.add(record.token);
    const copies = stored.get(record.token) ?? [];
    const last = record.attempts.at(-1);
    const kind = record.reply ? 'reply' : 'create';
    const id = record.id ? String(record.id) : '(no id)';
    if (copies.length > 1) violations.push(`${kind} ${record.token} (${id}) applied ${copies.length} times`);
    if (last?.ok) {
      if (copies.length !== 1) violations.push(`${kind} ${record.token} (${id}) resolved but stored ${copies.length} times`);
      else if (record.id && String(copies[0]?._id) !== String(record.id))
        violations.push(`${kind} ${record.token} resolved as ${id} but stored as ${String(copies[0]?._id)}`);
    } else if (last && !last.failure.unknown && copies.length > 0) {
      violations.push(
        `${kind} ${record.token} (${id}) rejected without outcome 'unknown' (${last.failure.code}: ${last.failure.message}) yet stored; calls: ${describeAttempts(record.attempts)}`,
      );
    }
    if (copies.length === 1 && String(copies[0]?.tenant_id) !== fixture.tenant)
      violations.push(`${kind} ${record.token} stored in another tenant`);
  }
  for (const token of stored.keys()) {
    if (token.startsWith(`${fixture.run}:`) && !token.startsWith(`${fixture.run}:fixture:`) && !known.has(token)) {
      violations.push(`a message nobody wrote is stored: ${token}`);
    }
  }

  // Counters equal a recount.
  const recount = await repositories.messages.recountReplies(fixture.parent);
  if (recount.stored !== recount.actual) {
    violations.push(`reply_count of parent ${String(fixture.parent)} is ${recount.stored}, the live replies are ${recount.actual}`);
  }
  const replies = ledger.creates.filter((record) => record.reply && (stored.get(record.token)?.length ?? 0) > 0).length;
  if (recount.actual !== replies) violations.push(`recountReplies found ${recount.actual} replies, the truth has ${replies}`);

  // Reactions: one per user per emoji, and each key's state is one its calls allow.
  const byId = new Map(messages.map((message) => [String(message._id), message]));
  for (const target of fixture.reactionTargets) {
    const reactions = (byId.get(String(target))?.reactions ?? []) as Array<{ user_id: ObjectId; emoji: string }>;
    const counts = new Map<string, number>();
    for (const reaction of reactions) {
      const key = `${String(target)}:${String(reaction.user_id)}:${reaction.emoji}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const [key, count] of counts) if (count > 1) violations.push(`reaction ${key} stored ${count} times`);
    for (const [key, ops] of ledger.reactions) {
      if (!key.startsWith(`${String(target)}:`)) continue;
      let possible = new Set<boolean>([false]);
      for (const { op, attempts } of ops) {
        const target = op === 'add';
        if (presentAfter(attempts)) possible = new Set([target]);
        else if (attempts.some((attempt) => !attempt.ok && attempt.failure.unknown)) possible.add(target);
      }
      const present = (counts.get(key) ?? 0) > 0;
      if (!possible.has(present)) {
        violations.push(
          `reaction ${key} is ${present ? 'present' : 'absent'} after ${ops.map((op) => `${op.op}[${describeAttempts(op.attempts)}]`).join(', ')}`,
        );
      }
    }
  }

  // markAsRead storm: a user at most once in read_by; resolved → there; rejected (never unknown) → not;
  // status only forward, and where a call resolved.
  for (const target of fixture.stormTargets) {
    const message = byId.get(String(target));
    const readBy = (message?.read_by ?? []) as Array<{ user_id: ObjectId }>;
    const counts = new Map<string, number>();
    for (const receipt of readBy) counts.set(String(receipt.user_id), (counts.get(String(receipt.user_id)) ?? 0) + 1);
    for (const [user, count] of counts) if (count > 1) violations.push(`user ${user} is in read_by of ${String(target)} ${count} times`);
    let anyRead = false;
    for (const [key, tally] of ledger.reads) {
      if (!key.startsWith(`${String(target)}:`)) continue;
      const user = key.slice(key.indexOf(':') + 1);
      const present = (counts.get(user) ?? 0) > 0;
      if (tally.resolved > 0) anyRead = true;
      if (tally.resolved > 0 && !present) violations.push(`markAsRead ${key} resolved ${tally.resolved} times but no receipt is stored`);
      if (tally.resolved === 0 && tally.unknown === 0 && present) {
        violations.push(
          `markAsRead ${key} only ever rejected without outcome 'unknown' (${tally.rejected} calls), yet its receipt is stored`,
        );
      }
    }
    const status = String(message?.status);
    if (anyRead && status !== 'read')
      violations.push(`message ${String(target)} was read (a markAsRead resolved) but its status is ${status}`);
    const delivered = ledger.delivered.get(String(target));
    if (delivered && delivered.resolved > 0 && (statusRank[status] ?? -1) < DELIVERED_RANK) {
      violations.push(`message ${String(target)} was delivered (a markDelivered resolved) but its status is ${status}`);
    }
  }

  // last_message equals the newest live message of every conversation written to.
  for (const conversation of fixture.conversations) {
    const { consistent, messageId } = await repositories.messages.verifyLastMessage(conversation);
    if (!consistent) {
      violations.push(`conversation ${String(conversation)}: last_message is not the newest live message (${String(messageId)})`);
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** What a fault injector gets: the proxy, the ledger, and ways to wait on the workload. */
export interface FaultContext {
  proxy: TcpProxy;
  ledger: Ledger;
  /** Waits until `fraction` of the planned calls are done (or the workload ended). */
  progress(fraction: number): Promise<void>;
  /** True once the workload has settled. */
  readonly finished: boolean;
  /** Counts one injected fault of `kind`; the first one releases the burst of replies. */
  injected(kind: string, count?: number): void;
}

export type FaultInjector = (context: FaultContext) => Promise<void>;

/** What a scenario did. */
export interface ScenarioReport {
  name: string;
  seed: number;
  calls: number;
  resolved: number;
  rejected: number;
  unknown: number;
  resends: number;
  retries: number;
  faults: Record<string, number>;
  errors: Record<string, number>;
  durationMS: number;
  violations: string[];
}

export interface ScenarioOptions {
  name: string;
  seed: number;
  tenant: string;
  /** The application's client (through the proxy) and its data layer. */
  client: DataClient;
  app: DataLayer;
  /** A data layer on a direct client: fixtures, recounts, the truth. */
  truth: DataLayer;
  proxy: TcpProxy;
  size: WorkloadSize;
  fault: FaultInjector;
  /** Extra work alongside the workload (readers), stopped when it ends. */
  alongside?: (fixture: Fixture, finished: () => boolean, ledger: Ledger) => Promise<void>;
  /** Extra checks after the workload (caches), returning violations. */
  afterwards?: (fixture: Fixture, ledger: Ledger) => Promise<string[]>;
  /** Counters of injected faults, shared across scenarios (the soak). */
  faults?: Record<string, number>;
}

/** Creates the fixture, runs the workload with the fault injected, then checks every invariant. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioReport> {
  const started = Date.now();
  const run = `${options.name}-${options.seed}-${started.toString(36)}`;
  const fixture = await createFixture(options.truth, options.tenant, run, options.size);
  const ledger = new Ledger();
  const faults: Record<string, number> = {};
  const stopRetries = options.client.on('retry', () => {
    ledger.retries += 1;
  });
  const db = unsafeDatabase(options.truth.client);
  const stopWatching = watchStatuses(db, fixture, ledger);
  let finished = false;
  let releaseReplies = () => {};
  const repliesStart = new Promise<void>((resolve) => {
    releaseReplies = resolve;
  });
  const workload = runWorkload(
    options.app.forTenant(options.tenant),
    fixture,
    options.size,
    ledger,
    seededRandom(options.seed),
    repliesStart,
  ).finally(() => {
    finished = true;
  });
  const context: FaultContext = {
    proxy: options.proxy,
    ledger,
    progress: async (fraction) => {
      await waitFor(() => finished || ledger.done >= fraction * ledger.planned, {
        what: `${Math.round(fraction * 100)}% of the workload of ${options.name}`,
        timeoutMS: 120_000,
        intervalMS: 20,
      });
    },
    get finished() {
      return finished;
    },
    injected: (kind, count = 1) => {
      releaseReplies();
      faults[kind] = (faults[kind] ?? 0) + count;
      if (options.faults) options.faults[kind] = (options.faults[kind] ?? 0) + count;
    },
  };
  // CAAS_DB_FAULT_DEBUG=1 prints the progress every two seconds.
  const debug = process.env.CAAS_DB_FAULT_DEBUG
    ? setInterval(() => {
        const state = `${ledger.done}/${ledger.planned} done, ${ledger.calls} calls, ${ledger.rejected} rejected (${ledger.unknown} unknown), ${ledger.retries} retries`;
        process.stderr.write(`[faults] ${options.name}: ${state}, faults ${JSON.stringify(faults)}\n`);
      }, 2000)
    : undefined;
  try {
    // The replies wait for the fault; a fault that ends (or fails) without injecting anything releases them too.
    const fault = options.fault(context).finally(releaseReplies);
    await Promise.all([workload, fault, options.alongside?.(fixture, () => finished, ledger)]);
  } finally {
    clearInterval(debug);
    await workload.catch(() => undefined);
    await stopWatching();
    stopRetries();
  }
  const violations = await checkInvariants(options.truth, db, fixture, ledger);
  if (options.afterwards) violations.push(...(await options.afterwards(fixture, ledger)));
  return {
    name: options.name,
    seed: options.seed,
    calls: ledger.calls,
    resolved: ledger.resolved,
    rejected: ledger.rejected,
    unknown: ledger.unknown,
    resends: ledger.resends,
    retries: ledger.retries,
    faults,
    errors: Object.fromEntries(ledger.errors),
    durationMS: Date.now() - started,
    violations,
  };
}

/** One line about a scenario, for logs. */
export function summarize(report: ScenarioReport): string {
  const faults = Object.entries(report.faults)
    .map(([kind, count]) => `${kind}×${count}`)
    .join(' ');
  const errors = Object.entries(report.errors)
    .map(([code, count]) => `${code}×${count}`)
    .join(' ');
  return (
    `[faults] ${report.name} seed=${report.seed}: ${report.calls} calls in ${(report.durationMS / 1000).toFixed(1)} s, ` +
    `${report.rejected} rejected (${report.unknown} unknown, ${report.resends} re-sent), ${report.retries} retries; ` +
    `faults: ${faults || 'none'}; errors: ${errors || 'none'}; violations: ${report.violations.length}`
  );
}

/** The class of a violation, for totals (the soak prints violations by class). */
export function violationKind(violation: string): string {
  const kinds: Array<[RegExp, string]> = [
    [/resolved but stored 0 times/, 'resolved write not stored (lost)'],
    [
      /rejected without outcome 'unknown' \(E_DUPLICATE_KEY/,
      "same-_id re-send rejected with E_DUPLICATE_KEY (no outcome 'unknown'), write stored",
    ],
    [/rejected without outcome 'unknown'/, "rejected without outcome 'unknown', write stored"],
    [/applied \d+ times|stored \d+ times/, 'applied twice'],
    [/reply_count|recountReplies/, 'reply_count differs from a recount'],
    [/last_message/, 'last_message is not the newest live message'],
    [/reaction/, 'reaction state'],
    [/markAsRead|read_by|status/, 'receipts and status'],
    [/stale/, 'stale cached read'],
    [/untyped/, 'untyped error'],
  ];
  return kinds.find(([pattern]) => pattern.test(violation))?.[1] ?? 'other';
}

/** The violations of a report, as a message that names the scenario and its seed. */
export function violationReport(report: ScenarioReport, limit = 25): string[] {
  return report.violations
    .slice(0, limit)
    .map((violation) => `${report.name} (seed ${report.seed}): ${violation}`)
    .concat(report.violations.length > limit ? [`... and ${report.violations.length - limit} more`] : []);
}

// ---------------------------------------------------------------------------------------------
// Fault injectors

/** A one-way partition: responses are dropped until at least `unknowns` calls have failed with an unknown outcome. */
export function dropResponses(unknowns = 3, startAt = 0.15): FaultInjector {
  return async (context) => {
    await context.progress(startAt);
    if (context.finished) return;
    const before = context.ledger.unknown;
    context.proxy.dropResponses();
    context.injected('drop-responses');
    try {
      await waitFor(() => context.finished || context.ledger.unknown - before >= unknowns, {
        what: `${unknowns} unknown outcomes`,
        timeoutMS: 90_000,
        intervalMS: 20,
      });
    } finally {
      context.proxy.deliverResponses();
    }
  };
}

/** Every response held `ms` (under the client's socket timeout) from `from` to `to` of the workload. */
export function delayResponses(ms = 200, from = 0.1, to = 0.45): FaultInjector {
  return async (context) => {
    await context.progress(from);
    if (context.finished) return;
    context.proxy.delayResponses(ms);
    context.injected('delay-responses');
    try {
      await context.progress(to);
    } finally {
      context.proxy.delayResponses(0);
    }
  };
}

/** Connections broken in the middle of a response, `perWave` at a time, at each point of `waves`. */
export function cutMidStream(perWave = 6, waves: readonly number[] = [0.1, 0.3, 0.5, 0.7]): FaultInjector {
  return async (context) => {
    for (const at of waves) {
      await context.progress(at);
      if (context.finished) return;
      let cuts = false;
      const cut = context.proxy.cutMidStream(perWave).then(() => {
        cuts = true;
      });
      await waitFor(() => cuts || context.finished, {
        what: `${perWave} connections cut mid-response`,
        timeoutMS: 120_000,
        intervalMS: 20,
      });
      if (cuts) context.injected('cut-mid-stream', perWave);
      await context.proxy.cutMidStream(0); // disarms what is left, and settles `cut`
      await cut;
    }
  };
}

/**
 * The network cut (connections dropped, new ones refused) until `rejections` calls have failed,
 * then restored; once at each point of `waves`.
 */
export function cutAndRestore(rejections = 5, waves: readonly number[] = [0.2, 0.55]): FaultInjector {
  return async (context) => {
    for (const at of waves) {
      await context.progress(at);
      if (context.finished) return;
      const before = context.ledger.rejected;
      await context.proxy.cut();
      context.injected('proxy-cut');
      try {
        await waitFor(() => context.finished || context.ledger.rejected - before >= rejections, {
          what: `${rejections} rejected calls`,
          timeoutMS: 90_000,
          intervalMS: 20,
        });
      } finally {
        await context.proxy.restore();
      }
    }
  };
}

/** Every document of every collection of `db`. */
async function snapshotOf(db: Db): Promise<Map<string, Document[]>> {
  const snapshot = new Map<string, Document[]>();
  const collections = await db.listCollections({}, { nameOnly: true }).toArray();
  for (const { name } of collections) snapshot.set(name, await db.collection(name).find({}).sort({ _id: 1 }).toArray());
  return snapshot;
}

/** Inserts `documents` into `name`; those already there (an earlier try of this call) are skipped. */
async function putBack(db: Db, name: string, documents: Document[]): Promise<void> {
  if (documents.length === 0) return;
  try {
    await db.collection(name).insertMany(documents, { ordered: false });
  } catch (error) {
    const failures = (error as { writeErrors?: Array<{ code?: number }> | { code?: number } }).writeErrors;
    const list = Array.isArray(failures) ? failures : failures ? [failures] : [];
    if (list.length === 0 || list.some((failure) => failure.code !== 11000)) throw error;
  }
}

const sameSnapshot = (a: Map<string, Document[]>, b: Map<string, Document[]>) =>
  a.size === b.size && [...a].every(([name, documents]) => JSON.stringify(documents) === JSON.stringify(b.get(name)));

/**
 * The MongoDB server stopped and started again under load, the application's client connected
 * through `context.proxy`. The test server keeps its data in memory and would come back empty; a
 * real mongod keeps what it applied. So the restart is made durable around the process restart:
 * 1. the network is cut at once (the crash as the clients see it: every connection reset, requests
 *    in flight applied or not), and the data is copied once it is quiescent;
 * 2. the server process is stopped, and the network opened again: the clients now reach a dead
 *    server (every connection closed at its handshake) until `rejections` calls have failed (their
 *    retry budgets ran out);
 * 3. the network is cut again, the process started, the copy and the indexes put back, and the
 *    network opened: the clients meet a new server process with the data it had.
 */
export function restartMongo(server: MongoTestServer, truth: DataLayer, rejections = 5, startAt = 0.25): FaultInjector {
  return async (context) => {
    await context.progress(startAt);
    if (context.finished) return;
    const restart = server.restart;
    if (!restart) throw new Error(`${server.description} cannot be restarted`);
    const db = unsafeDatabase(truth.client);
    await context.proxy.cut();
    context.injected('mongo-restart');
    try {
      let snapshot = await truthRead(() => snapshotOf(db));
      for (;;) {
        const again = await truthRead(() => snapshotOf(db));
        if (sameSnapshot(snapshot, again)) break;
        snapshot = again;
      }
      await restart(async () => {
        await context.proxy.restore();
        const before = context.ledger.rejected;
        await waitFor(() => context.finished || context.ledger.rejected - before >= rejections, {
          what: `${rejections} calls rejected by the stopped server`,
          timeoutMS: 90_000,
          intervalMS: 20,
        });
        await context.proxy.cut();
      });
      await truthRead(() => truth.syncIndexes());
      for (const [name, documents] of snapshot) await truthRead(() => putBack(db, name, documents));
    } finally {
      await context.proxy.cut();
      await context.proxy.restore();
    }
  };
}

/** Waits until `fraction` of the workload, then stops Redis (`restart`) until `whileDown` holds, and starts it again. */
export function restartRedis(
  restart: (whileDown: () => Promise<void>) => Promise<void>,
  whileDown: (context: FaultContext) => Promise<void>,
  startAt = 0.2,
): FaultInjector {
  return async (context) => {
    await context.progress(startAt);
    if (context.finished) return;
    await restart(() => {
      context.injected('redis-restart');
      return whileDown(context);
    });
  };
}

// ---------------------------------------------------------------------------------------------
// The cache

/** What a cached read must agree with the truth on. */
function digest(message: Document | null | undefined): string {
  if (!message) return 'null';
  const readBy = ((message.read_by ?? []) as Array<{ user_id: ObjectId }>).map((receipt) => String(receipt.user_id)).sort();
  const reactions = ((message.reactions ?? []) as Array<{ user_id: ObjectId; emoji: string }>)
    .map((reaction) => `${String(reaction.user_id)}:${reaction.emoji}`)
    .sort();
  const thread = message.thread as { reply_count?: number } | undefined;
  return JSON.stringify([String(message._id), message.status, readBy, reactions, thread?.reply_count ?? 0, message.deleted_at ?? null]);
}

/**
 * Reads the fixture's hot messages and the first page of its busiest conversation through each
 * cached instance and compares them with the truth. Returns the entries that differ (stale), empty
 * when every instance agrees with the database.
 */
export async function staleCacheEntries(instances: ReadonlyMap<string, TenantRepositories>, db: Db, fixture: Fixture): Promise<string[]> {
  const ids = [fixture.parent, ...fixture.reactionTargets, ...fixture.stormTargets];
  const truthDocuments = await db
    .collection('messages')
    .find({ _id: { $in: ids } })
    .toArray();
  const truthById = new Map(truthDocuments.map((document) => [String(document._id), digest(document)]));
  const conversation = fixture.conversations[0] as ObjectId;
  const page = await db
    .collection('messages')
    .find({ tenant_id: fixture.tenant, conversation_id: conversation, deleted_at: null })
    .sort({ _id: -1 })
    .limit(20)
    .toArray();
  const truthPage = page.map(digest).join('|');
  const stale: string[] = [];
  for (const [name, repositories] of instances) {
    for (const id of ids) {
      const cached = digest((await repositories.messages.findById(id)) as Document | null);
      if (cached !== truthById.get(String(id)))
        stale.push(`${name}: messages.findById(${String(id)}) is ${cached}, the database has ${truthById.get(String(id))}`);
    }
    const cachedPage = (await repositories.messages.findByConversation(conversation, { limit: 20 })).items
      .map((item) => digest(item as Document))
      .join('|');
    if (cachedPage !== truthPage) stale.push(`${name}: messages.findByConversation(${String(conversation)}) differs from the database`);
  }
  return stale;
}

/**
 * Readers alongside the workload: each instance reads the hot messages and the busiest
 * conversation's first page in a loop. A read that fails is a violation (with MongoDB up, a Redis
 * outage must only cost cache misses).
 */
export function cachedReaders(instances: ReadonlyMap<string, TenantRepositories>, fixture: Fixture, random: () => number) {
  return async (finished: () => boolean, ledger: Ledger): Promise<void> => {
    const ids = [fixture.parent, ...fixture.reactionTargets, ...fixture.stormTargets];
    await Promise.all(
      [...instances].map(async ([name, repositories]) => {
        while (!finished()) {
          const id = ids[Math.floor(random() * ids.length)] as ObjectId;
          try {
            await repositories.messages.findById(id);
            await repositories.messages.findByConversation(fixture.conversations[0] as ObjectId, { limit: 20 });
          } catch (error) {
            ledger.violations.push(`${name}: a cached read failed: ${failureOf(error).code}: ${failureOf(error).message}`);
          }
          await tick(5);
        }
      }),
    );
  };
}

/**
 * The Redis scenario: two instances of the application (two clients through the rig's proxy),
 * each with the cache plugin in both tiers on its own Redis connection; the workload writes
 * through the first, readers read through both; Redis is stopped until the instances have failed
 * 20 Redis calls, then started again (empty). Besides the invariants: no call fails (MongoDB is
 * up), and once both instances have reconnected every cached read agrees with the database
 * within 15 s (the entries live 60 s).
 */
export async function runRedisRestartScenario(options: {
  name: string;
  seed: number;
  tenant: string;
  rig: FaultRig;
  redis: RedisTestServer;
  size: WorkloadSize;
  /** Key prefix of the caches (one per database). */
  prefix: string;
  faults?: Record<string, number>;
}): Promise<ScenarioReport> {
  const restart = options.redis.restart;
  if (!restart) throw new Error(`${options.redis.description} cannot be restarted`);
  const connections: Redis[] = [];
  const caches: CachePlugin[] = [];
  const second = createDataClient(
    faultClientConfig(
      `mongodb://127.0.0.1:${options.rig.proxy.port}/?directConnection=true`,
      options.rig.client.databaseName,
      `${options.name}-b`,
    ),
  );
  const instance = (client: DataClient) => {
    const connection = new Redis(options.redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    connection.on('error', () => undefined);
    connections.push(connection);
    const policy = { ttlMS: 60_000 };
    const cache = createCache({
      redis: connection,
      prefix: options.prefix,
      methods: { 'messages.findById': policy, 'messages.findByConversation': policy, 'conversations.findById': policy },
    });
    caches.push(cache);
    let reconnects = 0;
    cache.on('cache:reconnect', () => {
      reconnects += 1;
    });
    return { data: createDataLayer({ client, plugins: [cache] }), reconnects: () => reconnects };
  };
  try {
    const [writer, reader] = [instance(options.rig.client), instance(second)];
    await waitFor(() => connections.every((connection) => connection.status === 'ready'), {
      what: 'both Redis connections',
      timeoutMS: 30_000,
      intervalMS: 20,
    });
    const instances = new Map<string, TenantRepositories>([
      ['instance a', writer.data.forTenant(options.tenant)],
      ['instance b', reader.data.forTenant(options.tenant)],
    ]);
    const l2Errors = () => caches.reduce((sum, cache) => sum + cache.stats().l2.errors, 0);
    const report = await runScenario({
      name: options.name,
      seed: options.seed,
      tenant: options.tenant,
      client: options.rig.client,
      app: writer.data,
      truth: options.rig.truth,
      proxy: options.rig.proxy,
      size: options.size,
      ...(options.faults && { faults: options.faults }),
      fault: restartRedis(restart, async (fault) => {
        const before = l2Errors();
        await waitFor(() => fault.finished || l2Errors() - before >= 20, {
          what: '20 failed Redis calls',
          timeoutMS: 60_000,
          intervalMS: 20,
        });
      }),
      alongside: (fixture, finished, ledger) => cachedReaders(instances, fixture, seededRandom(options.seed + 1))(finished, ledger),
      afterwards: async (fixture, ledger) => {
        const violations: string[] = [];
        if (ledger.rejected > 0) violations.push(`${ledger.rejected} calls failed although MongoDB was up (Redis outage only)`);
        await waitFor(
          () => connections.every((connection) => connection.status === 'ready') && writer.reconnects() > 0 && reader.reconnects() > 0,
          { what: 'both instances to reconnect to Redis', timeoutMS: 60_000, intervalMS: 20 },
        );
        // The invalidation bus takes milliseconds; an entry still stale after 15 s would stay so until its TTL.
        let stale: string[] = [];
        await waitFor(
          async () => {
            stale = await staleCacheEntries(instances, unsafeDatabase(options.rig.direct), fixture);
            return stale.length === 0;
          },
          { what: 'every cached read to agree with the database', timeoutMS: 15_000, intervalMS: 200 },
        ).catch(() => undefined);
        return [...violations, ...stale.map((entry) => `stale after Redis came back: ${entry}`)];
      },
    });
    return report;
  } finally {
    for (const cache of caches) await cache.close();
    for (const connection of connections) connection.disconnect();
    await second.close();
  }
}
