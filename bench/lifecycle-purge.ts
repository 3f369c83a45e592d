/**
 * Purge throughput of @caas-db/lifecycle on MESSAGES expired messages (default 1,000,000) and its
 * effect on concurrent message writes (p50/p99 of messages.create while it runs), with the rate
 * limit off and on, beside the raw driver's deleteMany of the same set; and the cost of the
 * messages.create reference check (integrity.messages) against the same call without it.
 * Run: pnpm bench:lifecycle (MESSAGES=100000 for a quick run). Starts and stops its own server
 * unless MONGODB_URI is set.
 *
 * The data is loaded with the raw driver's insertMany (loading is not what is measured). On
 * mongo-java-server every query but an exact `{ _id }` scans the collection, so each purge command
 * costs a scan of what is left: the defaults (10 conversations, batches of 10,000, the most the
 * lifecycle accepts) keep the number of commands, hence scans, low. The library does the same on a
 * real MongoDB, where each command is an index range instead.
 *
 * The rate-limited run purges a subset (LIMITED_CONVERSATIONS of the conversations, the others
 * overridden to keep their messages) at RATE docs/s, by default a quarter of the pace the unlimited
 * run measured: a full limited pass of 1,000,000 would take several times the unlimited one.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createDataClient, createDataLayer, type DataLayer, type Document, ObjectId } from '../packages/core/src/index.js';
import { unsafeDatabase } from '../packages/core/src/unsafe.js';
import { createLifecycle, DAY_MS, type Lifecycle, manualClock } from '../packages/lifecycle/src/index.js';
import { startMongo } from '../packages/testing/src/index.js';

const MESSAGES = Number(process.env.MESSAGES ?? 1_000_000);
const CONVERSATIONS = Number(process.env.CONVERSATIONS ?? 10);
/** Documents per purge command: mongo-java-server scans the collection for every query, so fewer, larger batches. */
const BATCH = Number(process.env.BATCH ?? 10_000);
/** The rate-limited run's budget in docs/s; by default a quarter of the unlimited run's measured pace. */
const RATE_SET = process.env.RATE ? Number(process.env.RATE) : undefined;
/** How many conversations' messages the rate-limited run purges (the rest are kept by a per-conversation override). */
const LIMITED_CONVERSATIONS = Math.min(
  CONVERSATIONS,
  Number(process.env.LIMITED_CONVERSATIONS ?? Math.max(1, Math.round(CONVERSATIONS / 5))),
);
const TENANT = 'bench';
const out = (line: string) => process.stdout.write(`${line}\n`);
const benchStarted = performance.now();
const mongo = await startMongo();
out(
  `messages: ${MESSAGES}, conversations: ${CONVERSATIONS}, batch: ${BATCH}; load average at start: ${loadavg()
    .map((value) => value.toFixed(1))
    .join(' ')}`,
);
out(
  `machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB), Node ${process.version}; server: ${mongo.description}`,
);

const now = new Date('2026-11-30T00:00:00Z');
const old = new Date(now.getTime() - 100 * DAY_MS);
// A long connect timeout: the driver's server monitor shares it, and on mongo-java-server a scan of
// 1,000,000 documents on a loaded machine (with the JVM collecting a multi-GiB heap) can stall the
// monitor's heartbeat past the 30 s default, which clears the pool mid-run.
const uri = `${mongo.uri}${mongo.uri.includes('?') ? '&' : '?'}connectTimeoutMS=600000`;
const client = createDataClient({ uri, database: `bench_lifecycle_${Date.now()}` });
const raw = unsafeDatabase(client);
const userA = new ObjectId();
const userB = new ObjectId();
const conversationIds = Array.from({ length: CONVERSATIONS }, () => new ObjectId());
const live = new ObjectId();

function setup(rate?: number): { data: DataLayer; lifecycle: Lifecycle } {
  const lifecycle = createLifecycle({
    clock: manualClock(now),
    batchSize: BATCH,
    ...(rate && { rateLimit: { documentsPerSecond: rate } }),
  });
  const data = createDataLayer({ client, plugins: [lifecycle], integrity: { messages: true } });
  return { data, lifecycle };
}

/**
 * MESSAGES expired messages over CONVERSATIONS conversations, and one live conversation for the
 * writers; with `conversations`, only the messages of the first that many conversations, added to
 * what is there (to put back what a partial purge removed).
 */
async function load(conversations?: number): Promise<void> {
  const partial = conversations !== undefined;
  if (!partial) {
    if (mongo.restart) {
      // A fresh server per phase: mongo-java-server keeps its oplog in memory, and after a million
      // inserts and deletes its JVM spends the run collecting garbage (the first attempt's reload
      // took minutes at 170 % CPU), which would be measured as the next phase's purge.
      await mongo.restart();
      // The pool's connections died with the old process: the first commands may fail until the
      // driver has noticed; ping until one goes through (at most a minute).
      for (let attempt = 0; ; attempt += 1) {
        try {
          await raw.command({ ping: 1 });
          break;
        } catch (error) {
          if (attempt >= 60) throw error;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }
      const fresh = setup();
      await fresh.data.syncIndexes();
      await fresh.lifecycle.syncIndexes();
    } else {
      await raw.collection('messages').deleteMany({});
      await raw.collection('conversations').deleteMany({});
    }
  }
  const started = performance.now();
  let inserted = 0;
  if (partial) {
    for (let offset = 0; offset < MESSAGES; offset += 10_000) {
      const batch = messagesIn(offset).filter((_, index) => (offset + index) % CONVERSATIONS < conversations);
      if (batch.length > 0) await raw.collection('messages').insertMany(batch, { ordered: false });
      inserted += batch.length;
    }
    out(`  loaded ${inserted.toLocaleString('en-US')} messages back in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return;
  }
  const participant = (user: ObjectId) => ({ user_id: user, role: 'member', joined_at: old, settings: { muted: false, pinned: false } });
  await raw.collection('conversations').insertMany(
    [...conversationIds, live].map((id) => ({
      _id: id,
      tenant_id: TENANT,
      type: 'group',
      dedupe_key: `group:${id}`,
      participants: [participant(userA), participant(userB)],
      metadata: {},
      schema_version: 1,
      created_at: old,
      updated_at: old,
      deleted_at: null,
    })),
  );
  for (let offset = 0; offset < MESSAGES; offset += 10_000)
    await raw.collection('messages').insertMany(messagesIn(offset), { ordered: false });
  out(`  loaded ${MESSAGES.toLocaleString('en-US')} messages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** The generated messages `offset` to `offset + 10,000` (message i is in conversation i mod CONVERSATIONS). */
function messagesIn(offset: number): Document[] {
  const batch: Document[] = [];
  for (let index = offset; index < Math.min(MESSAGES, offset + 10_000); index += 1)
    batch.push({
      tenant_id: TENANT,
      conversation_id: conversationIds[index % CONVERSATIONS],
      sender_id: index % 2 ? userA : userB,
      content: { type: 'text', encrypted_data: 'ZW5jcnlwdGVkIG1lc3NhZ2UgYm9keQ', encrypted_preview: 'cHJldmlldw' },
      reactions: [],
      read_by: [],
      status: 'sent',
      schema_version: 1,
      created_at: new Date(old.getTime() + index),
      updated_at: old,
      deleted_at: null,
    });
  return batch;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;

/** Two concurrent writers of messages.create into the live conversation until `until` settles. */
async function writeDuring(data: DataLayer, until: Promise<unknown>): Promise<{ count: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  const messages = data.forTenant(TENANT).messages;
  const writer = async (sender: ObjectId) => {
    while (!done) {
      const started = performance.now();
      await messages.create({ conversation_id: live, sender_id: sender, content: { type: 'text', encrypted_data: 'bGl2ZQ' } });
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all([writer(userA), writer(userB), until]);
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

try {
  const baseline = setup();
  await load();
  let loaded = true;
  const idleLoad = loadavg()[0]?.toFixed(1) ?? '';
  const idle = await writeDuring(baseline.data, new Promise((resolve) => setTimeout(resolve, 5000)));
  out(`writes alone (5 s): ${idle.count} creates, p50 ${idle.p50.toFixed(2)} ms, p99 ${idle.p99.toFixed(2)} ms`);

  const load1 = () =>
    loadavg()
      .map((value) => value.toFixed(1))
      .join(' ');
  const results: Array<{
    name: string;
    seconds: number;
    removed: number;
    writes: { count: number; p50: number; p99: number };
    load: string;
  }> = [];
  const purgeRun = async (name: string, rate: number | undefined, subset: number) => {
    if (!loaded) await load();
    loaded = false;
    const { data, lifecycle } = setup(rate);
    await lifecycle.policies.set(TENANT, { messages: { keepDays: 30 } });
    for (const id of conversationIds.slice(subset)) await lifecycle.policies.setForConversation(TENANT, id, { keepDays: null });
    const startLoad = load1();
    const started = performance.now();
    const purge = lifecycle.purge(TENANT, { rules: ['messages'] });
    const writes = await writeDuring(data, purge);
    const seconds = (performance.now() - started) / 1000;
    const report = await purge;
    results.push({ name, seconds, removed: report.counts.messages, writes, load: startLoad });
    out(`  ${name}: ${report.counts.messages} in ${seconds.toFixed(1)} s`);
    return report.counts.messages / seconds;
  };
  const pace = await purgeRun('lifecycle purge, no rate limit', undefined, CONVERSATIONS);
  const rate = RATE_SET ?? Math.max(1, Math.round(pace / 4));
  await purgeRun(
    `lifecycle purge, rate limit ${rate.toLocaleString('en-US')} docs/s, ${LIMITED_CONVERSATIONS} of ${CONVERSATIONS} conversations`,
    rate,
    LIMITED_CONVERSATIONS,
  );
  {
    // On an own server, a fresh one with the whole set (its oplog, see load); elsewhere the limited
    // run removed its subset only: put it back, and the same set as the unlimited run's is there again.
    await (mongo.restart ? load() : load(LIMITED_CONVERSATIONS));
    const { data } = setup();
    const startLoad = load1();
    const started = performance.now();
    const deleting = raw
      .collection('messages')
      .deleteMany({ tenant_id: TENANT, created_at: { $lt: new Date(now.getTime() - 30 * DAY_MS) } });
    const writes = await writeDuring(data, deleting);
    const seconds = (performance.now() - started) / 1000;
    results.push({
      name: 'raw driver deleteMany (same set, one command)',
      seconds,
      removed: (await deleting).deletedCount,
      writes,
      load: startLoad,
    });
  }
  out('');
  out('| run | removed | seconds | docs/s | concurrent creates | create p50 ms | create p99 ms | load average at its start |');
  out('|---|---:|---:|---:|---:|---:|---:|---|');
  out(`| writes alone (5 s) | – | – | – | ${idle.count} | ${idle.p50.toFixed(2)} | ${idle.p99.toFixed(2)} | ${idleLoad} |`);
  for (const result of results)
    out(
      `| ${result.name} | ${result.removed.toLocaleString('en-US')} | ${result.seconds.toFixed(1)} | ${Math.round(result.removed / result.seconds).toLocaleString('en-US')} | ${result.writes.count} | ${result.writes.p50.toFixed(2)} | ${result.writes.p99.toFixed(2)} | ${result.load} |`,
    );

  // The reference check of messages.create: the same sequential creates with integrity on and off.
  const REPEAT = 3000;
  const timeCreates = async (integrity: boolean) => {
    const data = createDataLayer({ client, integrity: { messages: integrity } });
    const messages = data.forTenant(TENANT).messages;
    for (let index = 0; index < 200; index += 1)
      await messages.create({ conversation_id: live, sender_id: userA, content: { type: 'text', encrypted_data: 'd2FybQ' } });
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let index = 0; index < REPEAT; index += 1)
      await messages.create({ conversation_id: live, sender_id: userA, content: { type: 'text', encrypted_data: 'dGVzdA' } });
    const used = process.cpuUsage(cpu);
    return { wallUS: ((performance.now() - started) * 1000) / REPEAT, cpuUS: (used.user + used.system) / REPEAT };
  };
  const uncachedData = createDataLayer({ client, integrity: { messages: { cacheTtlMS: 0 } } });
  const uncached = async () => {
    const messages = uncachedData.forTenant(TENANT).messages;
    const started = performance.now();
    for (let index = 0; index < REPEAT; index += 1)
      await messages.create({ conversation_id: live, sender_id: userA, content: { type: 'text', encrypted_data: 'dGVzdA' } });
    return ((performance.now() - started) * 1000) / REPEAT;
  };
  const off = await timeCreates(false);
  const on = await timeCreates(true);
  const noCache = await uncached();
  out('');
  out(
    `messages.create, ${REPEAT} sequential: integrity off ${off.wallUS.toFixed(0)} µs (${off.cpuUS.toFixed(0)} µs CPU); on, cached ${on.wallUS.toFixed(0)} µs (${on.cpuUS.toFixed(0)} µs CPU); on, cache off (one indexed read each) ${noCache.toFixed(0)} µs`,
  );
  await raw.dropDatabase();
  out(`total ${((performance.now() - benchStarted) / 1000).toFixed(0)} s; load average at the end: ${load1()}`);
} finally {
  await client.close();
  await mongo.stop();
}
