/**
 * pnpm bench: caas-db beside the raw driver and mongoose, on the same server, interleaved, with
 * warm-up. For each workload: ops/s, p50 and p99 (HDR histogram), client CPU µs per operation (the
 * server runs in another process, so this is the library's own cost) and the ratio to the raw
 * driver. Prints a table and writes bench-results/workloads.json. A benchmark, not a test.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Redis } from 'ioredis';
import { type Db, MongoClient, ObjectId } from 'mongodb';
import mongoose from 'mongoose';
import { createCache } from '../packages/cache/src/index.js';
import { createDataClient, createDataLayer, type DataLayer, type TenantRepositories } from '../packages/core/src/index.js';
import { unsafeDatabase } from '../packages/core/src/unsafe.js';
import { createSearch } from '../packages/search/src/index.js';
import { createTenancy } from '../packages/tenancy/src/index.js';
import { startMongo, startRedis } from '../packages/testing/src/index.js';

const OPS = Number(process.env.BENCH_OPS ?? 1500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const CONCURRENT_SECONDS = Number(process.env.BENCH_CONCURRENT_SECONDS ?? 10);
const SENDERS = 100;
const TENANT = 'acme';
const out = (line: string) => process.stdout.write(`${line}\n`);

const [mongo, redisServer] = await Promise.all([startMongo(), startRedis()]);
const machine = `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
out(`machine: ${machine}\nMongoDB: ${mongo.description}\n`);

// ---- the contenders ------------------------------------------------------------------------------
const stamp = Date.now();
const coreClient = createDataClient({ uri: mongo.uri, database: `bench_core_${stamp}`, pool: { maxSize: 100 } });
// The workloads send as random users into random conversations, as the raw driver and mongoose
// contenders do, none of which check references: the check is off here (bench:cost measures it on).
const core = createDataLayer({ client: coreClient, integrity: { messages: false }, batching: { messages: true } });
const tenancyClient = createDataClient({ uri: mongo.uri, database: `bench_tenancy_${stamp}`, pool: { maxSize: 100 } });
const search = createSearch();
const tenancyLayer = createDataLayer({
  integrity: { messages: false },
  client: tenancyClient,
  plugins: [createTenancy(), search],
  batching: { messages: true },
});
const redis = new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
const cachePlugin = createCache({ redis, methods: { 'users.findById': { ttlMS: 600_000 } } });
const cachedLayer = createDataLayer({ client: coreClient, integrity: { messages: false }, plugins: [cachePlugin] });
const raw = new MongoClient(mongo.uri, { maxPoolSize: 100 });
const rawDb: Db = raw.db(`bench_raw_${stamp}`);
await mongoose.connect(mongo.uri, { dbName: `bench_mongoose_${stamp}`, maxPoolSize: 100, autoIndex: false });

const messageSchema = new mongoose.Schema(
  {
    tenant_id: { type: String, required: true },
    conversation_id: { type: mongoose.Schema.Types.ObjectId, required: true },
    sender_id: { type: mongoose.Schema.Types.ObjectId, required: true },
    content: { type: { type: String, enum: ['text', 'file', 'image', 'video', 'audio', 'system'] }, encrypted_data: String },
    reactions: { type: [{ user_id: mongoose.Schema.Types.ObjectId, emoji: String, created_at: Date }], default: [] },
    read_by: { type: [{ user_id: mongoose.Schema.Types.ObjectId, read_at: Date }], default: [] },
    status: { type: String, default: 'sent' },
    deleted_at: { type: Date, default: null },
    schema_version: { type: Number, default: 1 },
  },
  { timestamps: { createdAt: 'created_at', updatedAt: 'updated_at' } },
);
messageSchema.index({ tenant_id: 1, conversation_id: 1, _id: -1 });
const conversationSchema = new mongoose.Schema(
  {
    tenant_id: String,
    type: String,
    dedupe_key: String,
    participants: [
      { user_id: mongoose.Schema.Types.ObjectId, role: String, joined_at: Date, settings: { muted: Boolean, pinned: Boolean } },
    ],
    metadata: { name: String },
    last_message: {
      message_id: mongoose.Schema.Types.ObjectId,
      content_preview: String,
      sender_id: mongoose.Schema.Types.ObjectId,
      sent_at: Date,
    },
    deleted_at: { type: Date, default: null },
    search_tokens: [String],
  },
  { timestamps: { createdAt: 'created_at', updatedAt: 'updated_at' } },
);
conversationSchema.index({ tenant_id: 1, 'participants.user_id': 1, updated_at: -1, _id: -1 });
const userSchema = new mongoose.Schema(
  {
    tenant_id: String,
    external_id: String,
    profile: { display_name: String, status: String },
    deleted_at: { type: Date, default: null },
    search_tokens: [String],
  },
  { timestamps: { createdAt: 'created_at', updatedAt: 'updated_at' } },
);
userSchema.index({ tenant_id: 1, external_id: 1 }, { unique: true });
userSchema.index({ tenant_id: 1, search_tokens: 1, _id: -1 });
// Loosely typed: the benchmark compares the work done, not mongoose's type inference.
type LooseModel = mongoose.Model<Record<string, unknown>>;
const Message = mongoose.model('Message', messageSchema) as unknown as LooseModel;
const Conversation = mongoose.model('Conversation', conversationSchema) as unknown as LooseModel;
const User = mongoose.model('User', userSchema) as unknown as LooseModel;

// ---- the same data for everyone ------------------------------------------------------------------
await core.syncIndexes();
await tenancyLayer.syncIndexes();
await tenancyLayer.clients.create({ tenant_id: TENANT, name: 'Acme', region: 'eu-west-1' });
await Promise.all([Message.syncIndexes(), Conversation.syncIndexes(), User.syncIndexes()]);
for (const [name, key] of Object.entries({
  messages: { tenant_id: 1, conversation_id: 1, _id: -1 },
  conversations: { tenant_id: 1, 'participants.user_id': 1, updated_at: -1, _id: -1 },
  users: { tenant_id: 1, search_tokens: 1, _id: -1 },
})) {
  await rawDb.collection(name).createIndex(key);
}
await rawDb.collection('users').createIndex({ tenant_id: 1, external_id: 1 }, { unique: true });

interface World {
  users: ObjectId[];
  conversations: ObjectId[];
  messages: ObjectId[];
}

async function seedLayer(repositories: TenantRepositories): Promise<World> {
  const users = (
    await repositories.users.createMany(
      Array.from({ length: 200 }, (_, index) => ({
        external_id: `u${index}`,
        profile: { display_name: index % 10 === 0 ? `Alice ${index}` : `User ${index}` },
      })),
    )
  ).map((user) => user._id);
  const conversations: ObjectId[] = [];
  for (let index = 0; index < 50; index += 1)
    conversations.push(
      (await repositories.conversations.createDirect([users[index] as ObjectId, users[index + 50] as ObjectId])).conversation._id,
    );
  const messages: ObjectId[] = [];
  for (const conversation of conversations) {
    const batch = await repositories.messages.createMany(
      Array.from({ length: 60 }, () => ({
        conversation_id: conversation,
        sender_id: users[0] as ObjectId,
        content: { type: 'text' as const, encrypted_data: 'x'.repeat(200) },
      })),
    );
    messages.push(...batch.map((message) => message._id));
  }
  return { users, conversations, messages };
}

const coreWorld = await seedLayer(core.forTenant(TENANT));
const tenancyWorld = await seedLayer(tenancyLayer.forTenant(TENANT));
async function seedRaw(): Promise<World> {
  const now = new Date();
  const users = Array.from({ length: 200 }, (_, index) => ({
    _id: new ObjectId(),
    tenant_id: TENANT,
    external_id: `u${index}`,
    profile: { display_name: index % 10 === 0 ? `Alice ${index}` : `User ${index}`, status: 'offline' },
    search_tokens: index % 10 === 0 ? ['w:alice', 'p:al', 'p:ali', 'p:alic', 'p:alice'] : ['w:user', 'p:us', 'p:use', 'p:user'],
    deleted_at: null,
    created_at: now,
    updated_at: now,
  }));
  await rawDb.collection('users').insertMany(users);
  await User.insertMany(users);
  const conversations = Array.from({ length: 50 }, (_, index) => ({
    _id: new ObjectId(),
    tenant_id: TENANT,
    type: 'direct',
    participants: [users[index]?._id, users[index + 50]?._id].map((user_id) => ({
      user_id,
      role: 'member',
      joined_at: now,
      settings: { muted: false, pinned: false },
    })),
    metadata: {},
    deleted_at: null,
    created_at: now,
    updated_at: now,
  }));
  await rawDb.collection('conversations').insertMany(conversations);
  await Conversation.insertMany(conversations);
  const messages = conversations.flatMap((conversation) =>
    Array.from({ length: 60 }, () => ({
      _id: new ObjectId(),
      tenant_id: TENANT,
      conversation_id: conversation._id,
      sender_id: users[0]?._id,
      content: { type: 'text', encrypted_data: 'x'.repeat(200) },
      reactions: [],
      read_by: [],
      status: 'sent',
      deleted_at: null,
      created_at: now,
      updated_at: now,
    })),
  );
  await rawDb.collection('messages').insertMany(messages);
  await Message.insertMany(messages);
  return {
    users: users.map((user) => user._id),
    conversations: conversations.map((conversation) => conversation._id),
    messages: messages.map((message) => message._id),
  };
}
const rawWorld = await seedRaw();
const mongooseWorld = rawWorld;

const pick = <T>(values: readonly T[]): T => values[Math.floor(Math.random() * values.length)] as T;

// ---- the operations, one implementation per contender ---------------------------------------------
type Operation = () => Promise<unknown>;
type Contender = 'caas-db' | 'caas-db + tenancy' | 'raw driver' | 'mongoose';

function layerOps(layer: DataLayer, world: World, withSearch: boolean): Record<string, Operation | undefined> {
  const repositories = layer.forTenant(TENANT);
  return {
    'send one message': () =>
      repositories.messages.create({
        conversation_id: pick(world.conversations),
        sender_id: pick(world.users),
        content: { type: 'text', encrypted_data: 'x'.repeat(200) },
      }),
    'read a conversation page': () => repositories.messages.findByConversation(pick(world.conversations), { limit: 50 }),
    'mark read': () => repositories.messages.markAsRead(pick(world.messages), pick(world.users)),
    'find a user by id': () => repositories.users.findById(pick(world.users)),
    "list a user's conversations": () => repositories.conversations.listForUser(pick(world.users), { limit: 20 }),
    search: withSearch ? () => search.forTenant(TENANT).users('ali', { limit: 20 }) : undefined,
  };
}

/** The token-engine search the library runs, written out for the raw driver and mongoose. */
const searchPipeline = [
  {
    $match: {
      tenant_id: TENANT,
      deleted_at: null,
      $or: [{ search_tokens: { $all: ['p:ali'] } }, { external_id: { $gte: 'ali', $lt: 'ali\uffff' } }],
    },
  },
  {
    $addFields: {
      score: {
        $add: [
          { $size: { $setIntersection: [{ $ifNull: ['$search_tokens', []] }, ['w:ali']] } },
          { $cond: [{ $eq: ['$external_id', 'ali'] }, 10, 0] },
        ],
      },
    },
  },
  { $sort: { score: -1, _id: -1 } },
  { $limit: 21 },
];

const rawOps: Record<string, Operation> = {
  'send one message': async () => {
    const now = new Date();
    const conversation = pick(rawWorld.conversations);
    const message = {
      _id: new ObjectId(),
      tenant_id: TENANT,
      conversation_id: conversation,
      sender_id: pick(rawWorld.users),
      content: { type: 'text', encrypted_data: 'x'.repeat(200) },
      reactions: [],
      read_by: [],
      status: 'sent',
      deleted_at: null,
      schema_version: 1,
      created_at: now,
      updated_at: now,
    };
    await rawDb.collection('messages').insertOne(message);
    await rawDb.collection('conversations').updateOne(
      { tenant_id: TENANT, _id: conversation },
      {
        $set: { last_message: { message_id: message._id, content_preview: '', sender_id: message.sender_id, sent_at: now } },
        $max: { updated_at: now },
      },
    );
  },
  'read a conversation page': () =>
    rawDb
      .collection('messages')
      .find({ tenant_id: TENANT, conversation_id: pick(rawWorld.conversations), deleted_at: null })
      .sort({ _id: -1 })
      .limit(51)
      .toArray(),
  'mark read': async () => {
    const id = pick(rawWorld.messages);
    const user = pick(rawWorld.users);
    const now = new Date();
    await rawDb.collection('messages').updateOne({ tenant_id: TENANT, _id: id, deleted_at: null, 'read_by.user_id': { $ne: user } }, {
      $push: { read_by: { user_id: user, read_at: now } },
      $set: { updated_at: now },
    } as never);
    await rawDb
      .collection('messages')
      .updateOne(
        { tenant_id: TENANT, _id: id, deleted_at: null, status: { $in: ['sent', 'delivered'] } },
        { $set: { status: 'read', updated_at: now } },
      );
  },
  'find a user by id': () => rawDb.collection('users').findOne({ tenant_id: TENANT, _id: pick(rawWorld.users), deleted_at: null }),
  "list a user's conversations": () =>
    rawDb
      .collection('conversations')
      .find({ tenant_id: TENANT, 'participants.user_id': pick(rawWorld.users), deleted_at: null })
      .sort({ updated_at: -1, _id: -1 })
      .limit(21)
      .toArray(),
  search: () => rawDb.collection('users').aggregate(searchPipeline).toArray(),
};

const mongooseOps: Record<string, Operation> = {
  'send one message': async () => {
    const conversation = pick(mongooseWorld.conversations);
    const message = await Message.create({
      tenant_id: TENANT,
      conversation_id: conversation,
      sender_id: pick(mongooseWorld.users),
      content: { type: 'text', encrypted_data: 'x'.repeat(200) },
    });
    const sentAt = message.get('created_at') as Date;
    await Conversation.updateOne(
      { tenant_id: TENANT, _id: conversation },
      {
        $set: { last_message: { message_id: message._id, content_preview: '', sender_id: message.get('sender_id'), sent_at: sentAt } },
        $max: { updated_at: sentAt },
      },
      { timestamps: false },
    );
  },
  'read a conversation page': () =>
    Message.find({ tenant_id: TENANT, conversation_id: pick(mongooseWorld.conversations), deleted_at: null })
      .sort({ _id: -1 })
      .limit(51)
      .lean(),
  'mark read': async () => {
    const id = pick(mongooseWorld.messages);
    const user = pick(mongooseWorld.users);
    await Message.updateOne(
      { tenant_id: TENANT, _id: id, deleted_at: null, 'read_by.user_id': { $ne: user } },
      { $push: { read_by: { user_id: user, read_at: new Date() } } },
    );
    await Message.updateOne(
      { tenant_id: TENANT, _id: id, deleted_at: null, status: { $in: ['sent', 'delivered'] } },
      { $set: { status: 'read' } },
    );
  },
  'find a user by id': () => User.findOne({ tenant_id: TENANT, _id: pick(mongooseWorld.users), deleted_at: null }).lean(),
  "list a user's conversations": () =>
    Conversation.find({ tenant_id: TENANT, 'participants.user_id': pick(mongooseWorld.users), deleted_at: null })
      .sort({ updated_at: -1, _id: -1 })
      .limit(21)
      .lean(),
  search: () => User.aggregate(searchPipeline as mongoose.PipelineStage[]),
};

const contenders: Record<Contender, Record<string, Operation | undefined>> = {
  'caas-db': layerOps(core, coreWorld, false),
  'caas-db + tenancy': layerOps(tenancyLayer, tenancyWorld, true),
  'raw driver': rawOps,
  mongoose: mongooseOps,
};

// ---- sequential workloads, interleaved -----------------------------------------------------------
interface Measured {
  opsPerSecond: number;
  p50: number;
  p99: number;
  cpuMicros: number;
}

async function measure(operation: Operation, count: number, histogram: hdr.Histogram): Promise<{ seconds: number; cpu: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < count; index += 1) {
    const at = performance.now();
    await operation();
    histogram.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
  }
  const used = process.cpuUsage(cpu);
  return { seconds: (performance.now() - started) / 1000, cpu: used.user + used.system };
}

const results: Record<string, Partial<Record<Contender | 'caas-db, cached', Measured>>> = {};
const workloadNames = Object.keys(rawOps);
for (const workload of workloadNames) {
  const participants = (Object.keys(contenders) as Contender[]).filter((name) => contenders[name][workload]);
  const totals = new Map<Contender, { histogram: hdr.Histogram; seconds: number; cpu: number; ops: number }>();
  for (const name of participants) totals.set(name, { histogram: hdr.build(), seconds: 0, cpu: 0, ops: 0 });
  for (const name of participants) await measure(contenders[name][workload] as Operation, Math.ceil(OPS / 5), hdr.build()); // warm-up
  for (let round = 0; round < ROUNDS; round += 1) {
    const order = participants.map((_, index) => participants[(index + round) % participants.length] as Contender);
    for (const name of order) {
      const total = totals.get(name);
      if (!total) continue;
      const { seconds, cpu } = await measure(contenders[name][workload] as Operation, Math.ceil(OPS / ROUNDS), total.histogram);
      total.seconds += seconds;
      total.cpu += cpu;
      total.ops += Math.ceil(OPS / ROUNDS);
    }
  }
  results[workload] = Object.fromEntries(
    [...totals.entries()].map(([name, total]) => [
      name,
      {
        opsPerSecond: total.ops / total.seconds,
        p50: total.histogram.getValueAtPercentile(50) / 1000,
        p99: total.histogram.getValueAtPercentile(99) / 1000,
        cpuMicros: total.cpu / total.ops,
      },
    ]),
  );
  out(`measured: ${workload}`);
}

// Cached reads: caas-db with the cache on, against the raw driver's uncached read.
{
  const cached = cachedLayer.forTenant(TENANT);
  for (const user of coreWorld.users) await cached.users.findById(user);
  const histogram = hdr.build();
  const { seconds, cpu } = await measure(() => cached.users.findById(pick(coreWorld.users)), OPS, histogram);
  results['find a user by id'] = {
    ...results['find a user by id'],
    'caas-db, cached': {
      opsPerSecond: OPS / seconds,
      p50: histogram.getValueAtPercentile(50) / 1000,
      p99: histogram.getValueAtPercentile(99) / 1000,
      cpuMicros: cpu / OPS,
    },
  };
}

// ---- concurrent senders, with readers measuring read latency under the write load ----------------
interface Concurrent {
  messagesPerSecond: number;
  writeP50: number;
  writeP99: number;
  readP99: number;
  seconds: number;
}

async function concurrentSenders(send: Operation, read: Operation): Promise<Concurrent> {
  const writes = hdr.build();
  const reads = hdr.build();
  const deadline = performance.now() + CONCURRENT_SECONDS * 1000;
  let sent = 0;
  const started = performance.now();
  const sender = async () => {
    while (performance.now() < deadline) {
      const at = performance.now();
      await send();
      writes.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
      sent += 1;
    }
  };
  const reader = async () => {
    while (performance.now() < deadline) {
      const at = performance.now();
      await read();
      reads.recordValue(Math.max(1, Math.round((performance.now() - at) * 1000)));
    }
  };
  await Promise.all([...Array.from({ length: SENDERS }, sender), reader(), reader()]);
  const seconds = (performance.now() - started) / 1000;
  return {
    messagesPerSecond: sent / seconds,
    writeP50: writes.getValueAtPercentile(50) / 1000,
    writeP99: writes.getValueAtPercentile(99) / 1000,
    readP99: reads.getValueAtPercentile(99) / 1000,
    seconds,
  };
}

const concurrent: Record<string, Concurrent> = {};
for (const name of Object.keys(contenders) as Contender[]) {
  const operations = contenders[name];
  concurrent[name] = await concurrentSenders(
    operations['send one message'] as Operation,
    operations['read a conversation page'] as Operation,
  );
  out(`measured: ${SENDERS} concurrent senders, ${name}`);
}

// ---- pool sizing: the same concurrent senders through pools of different sizes --------------------
const poolSweep: Record<string, number> = {};
for (const maxSize of [5, 20, 100]) {
  const client = createDataClient({ uri: mongo.uri, database: `bench_pool_${maxSize}_${stamp}`, pool: { maxSize } });
  const layer = createDataLayer({ client, integrity: { messages: false }, batching: { messages: true } });
  const repositories = layer.forTenant(TENANT);
  const conversation = new ObjectId();
  const measured = await concurrentSenders(
    () =>
      repositories.messages.create({
        conversation_id: conversation,
        sender_id: conversation,
        content: { type: 'text', encrypted_data: 'x'.repeat(200) },
      }),
    () => repositories.messages.findByConversation(conversation, { limit: 50 }),
  );
  poolSweep[`maxPoolSize ${maxSize}`] = measured.messagesPerSecond;
  await unsafeDatabase(client).dropDatabase();
  await client.close();
  out(`measured: pool of ${maxSize}`);
}

// ---- storage efficiency of messages --------------------------------------------------------------
const stats = await unsafeDatabase(coreClient).command({ collStats: 'messages' });
const sample = await unsafeDatabase(coreClient).collection('messages').find({}).limit(1000).toArray();
const payload =
  sample.reduce((sum, message) => sum + Buffer.byteLength(String(message.content?.encrypted_data ?? '')), 0) / Math.max(1, sample.length);
const documentBytes = Number(stats.size) / Math.max(1, Number(stats.count));
const indexBytes = Number(stats.totalIndexSize ?? 0) / Math.max(1, Number(stats.count));

// ---- report --------------------------------------------------------------------------------------
const format = (value: number | undefined, digits = 2) => (value === undefined ? '—' : value.toFixed(digits));
out(
  `\n${OPS} operations per contender and workload, in ${ROUNDS} interleaved rounds after a warm-up; latencies in ms, client CPU in µs per operation.\n`,
);
out('| workload | contender | ops/s | p50 | p99 | CPU µs/op | ratio to raw (p50) |');
out('|---|---|---|---|---|---|---|');
for (const [workload, byContender] of Object.entries(results)) {
  const rawP50 = byContender['raw driver']?.p50;
  for (const [name, measured] of Object.entries(byContender)) {
    if (!measured) continue;
    out(
      `| ${workload} | ${name} | ${format(measured.opsPerSecond, 0)} | ${format(measured.p50, 3)} | ${format(measured.p99, 3)} | ${format(measured.cpuMicros, 0)} | ${rawP50 ? format(measured.p50 / rawP50) : '—'} |`,
    );
  }
}
out(
  `\n${SENDERS} concurrent senders for ${CONCURRENT_SECONDS} s each (caas-db with write batching), 2 readers of conversation pages alongside:\n`,
);
out('| contender | messages/s | write p50 | write p99 | read p99 under load |');
out('|---|---|---|---|---|');
for (const [name, measured] of Object.entries(concurrent)) {
  out(
    `| ${name} | ${format(measured.messagesPerSecond, 0)} | ${format(measured.writeP50, 2)} | ${format(measured.writeP99, 2)} | ${format(measured.readP99, 2)} |`,
  );
}
out(
  `\npool sizing (caas-db, ${SENDERS} concurrent senders with batching): ${Object.entries(poolSweep)
    .map(([name, rate]) => `${name}: ${format(rate, 0)} messages/s`)
    .join(', ')}`,
);
out(
  `\nmessages: ${format(payload, 0)} B of ciphertext per message, ${format(documentBytes, 0)} B per stored document, ${format(indexBytes, 0)} B of index per document (collStats); storage efficiency ${format((payload / (documentBytes + indexBytes)) * 100, 1)}% (ciphertext over document + index bytes)`,
);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/workloads.json', import.meta.url),
  `${JSON.stringify({ machine, server: mongo.description, ops: OPS, rounds: ROUNDS, results, concurrent, poolSweep, storage: { payload, documentBytes, indexBytes } }, null, 2)}\n`,
);

await mongoose.disconnect();
await raw.close();
await cachePlugin.close();
redis.disconnect();
await coreClient.close();
await tenancyClient.close();
await Promise.all([mongo.stop(), redisServer.stop()]);
