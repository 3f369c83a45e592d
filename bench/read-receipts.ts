/**
 * pnpm bench:receipts — what marking a conversation read and counting its unread messages cost in
 * groups of 10, 1,000 and 10,000 members: the per-message approach (a `read_by` receipt appended
 * to every message: `messages.markAsRead` once per unread message, an unread count that filters on
 * `read_by`) against read positions (`messages.markConversationRead`, `messages.unreadCount`), each
 * through caas-db and as the same wire commands on the raw driver, on the same server in one run.
 *
 * Each reader is one of the group's members; every other member has already read everything (their
 * receipts are on the messages, their positions on the conversation), so each measured call is the
 * last reader catching up on `UNREAD` messages: the steady state of a busy group. Per call: wall
 * time (median) and client CPU (`process.cpuUsage()`, mean). A benchmark, not a test.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { BSON, type Db, type Document, MongoClient, ObjectId } from 'mongodb';
import { createDataClient, createDataLayer, DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO } from '../packages/core/src/index.js';
import { startMongo } from '../packages/testing/src/index.js';

const SIZES = (process.env.BENCH_SIZES ?? '10,1000,10000').split(',').map(Number);
const UNREAD = Number(process.env.BENCH_UNREAD ?? 20);
const READERS = Number(process.env.BENCH_READERS ?? 16);
const TENANT = 'acme';
const out = (line: string) => process.stdout.write(`${line}\n`);

const mongo = await startMongo();
const machine = `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
out(
  `machine: ${machine}\nserver: ${mongo.description}\nload average at start: ${loadavg()
    .map((load) => load.toFixed(1))
    .join(', ')}\n${UNREAD} unread messages per reader, up to ${READERS} readers per group size (the first one warms up)\n`,
);
const database = `receipts_${Date.now()}`;
const client = createDataClient({ uri: mongo.uri, database, pool: { maxSize: 10 } });
const data = createDataLayer({ client });
await data.syncIndexes();
const acme = data.forTenant(TENANT);
const raw = new MongoClient(mongo.uri, { maxPoolSize: 10 });
const db: Db = raw.db(database);

interface World {
  conversation: ObjectId;
  owner: ObjectId;
  readers: ObjectId[];
  messages: ObjectId[];
}

/** A group of `size` members with UNREAD messages that everybody but `readers` has read, both ways. */
async function seed(size: number): Promise<World> {
  const [owner, ...members] = Array.from({ length: size }, () => new ObjectId()) as [ObjectId, ...ObjectId[]];
  const conversation = await acme.conversations.createGroup({ type: 'group', ownerId: owner, memberIds: members });
  const messages = await acme.messages.createMany(
    Array.from({ length: UNREAD }, (_, index) => ({
      conversation_id: conversation._id,
      sender_id: owner,
      content: { type: 'text' as const, encrypted_data: `c2VlZA${index}`.padEnd(200, 'q') },
    })),
  );
  const readers = members.slice(0, Math.min(READERS, members.length - 1));
  const newest = messages.at(-1)?._id as ObjectId;
  const readAt = new Date();
  await db
    .collection('conversations')
    .updateOne(
      { _id: conversation._id },
      { $set: { 'participants.$[p].last_read_message_id': newest, 'participants.$[p].last_read_at': readAt } },
      { arrayFilters: [{ 'p.user_id': { $nin: readers } }] },
    );
  const others = members.filter((member) => !readers.some((reader) => reader.equals(member)));
  await db
    .collection('messages')
    .updateMany(
      { _id: { $in: messages.map((message) => message._id) } },
      { $set: { read_by: others.map((user_id) => ({ user_id, read_at: readAt })), status: 'read' } },
    );
  return { conversation: conversation._id, owner, readers, messages: messages.map((message) => message._id) };
}

/** The raw driver sending what `markConversationRead` sends. */
async function rawMarkConversationRead(world: World, user: ObjectId, size: number): Promise<void> {
  const conversations = db.collection('conversations');
  const messages = db.collection('messages');
  const [newest] = await messages
    .find(
      { tenant_id: TENANT, conversation_id: world.conversation, deleted_at: null },
      { sort: { _id: -1 }, limit: 1, projection: { _id: 1 } },
    )
    .toArray();
  const upTo = newest?._id as ObjectId;
  const before = await conversations.findOneAndUpdate(
    {
      tenant_id: TENANT,
      _id: world.conversation,
      deleted_at: null,
      participants: {
        $elemMatch: { user_id: user, $or: [{ last_read_message_id: { $exists: false } }, { last_read_message_id: { $lt: upTo } }] },
      },
    },
    { $set: { 'participants.$.last_read_message_id': upTo, 'participants.$.last_read_at': new Date() } },
    { returnDocument: 'before', projection: { type: 1, participants: { $elemMatch: { user_id: user } } } },
  );
  if (!before || size > DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO) return;
  await conversations.findOne(
    { tenant_id: TENANT, _id: world.conversation, [`participants.${DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO}`]: { $exists: false } },
    { projection: { _id: 1 } },
  );
  const previous = (before.participants as Document[])[0]?.last_read_message_id as ObjectId | undefined;
  const filter = {
    tenant_id: TENANT,
    conversation_id: world.conversation,
    _id: { ...(previous && { $gt: previous }), $lte: upTo },
    deleted_at: null,
    sender_id: { $ne: user },
  };
  const now = new Date();
  await messages.updateMany({ ...filter, 'read_by.user_id': { $ne: user } }, {
    $push: { read_by: { user_id: user, read_at: now } },
    $set: { updated_at: now },
  } as Document);
  await messages.updateMany({ ...filter, status: { $in: ['sent', 'delivered'] } }, { $set: { status: 'read', updated_at: now } });
}

/** The raw driver sending what `markAsRead` sends, once per unread message. */
async function rawMarkEachRead(world: World, user: ObjectId): Promise<void> {
  const messages = db.collection('messages');
  for (const id of world.messages) {
    const now = new Date();
    await messages.updateOne({ tenant_id: TENANT, _id: id, deleted_at: null, 'read_by.user_id': { $ne: user } }, {
      $push: { read_by: { user_id: user, read_at: now } },
      $set: { updated_at: now },
    } as Document);
    await messages.updateOne(
      { tenant_id: TENANT, _id: id, deleted_at: null, status: { $in: ['sent', 'delivered'] } },
      { $set: { status: 'read', updated_at: now } },
    );
  }
}

async function rawUnreadByPosition(world: World, user: ObjectId): Promise<number> {
  const [found] = await db
    .collection('conversations')
    .find(
      { tenant_id: TENANT, _id: world.conversation, deleted_at: null, 'participants.user_id': user },
      { limit: 1, projection: { participants: { $elemMatch: { user_id: user } } } },
    )
    .toArray();
  const position = (found?.participants as Document[] | undefined)?.[0]?.last_read_message_id as ObjectId | undefined;
  return db.collection('messages').countDocuments(
    {
      tenant_id: TENANT,
      conversation_id: world.conversation,
      ...(position && { _id: { $gt: position } }),
      deleted_at: null,
      sender_id: { $ne: user },
    },
    { limit: 100 },
  );
}

/** The per-message approach's unread count: messages whose `read_by` lacks the user (no index can serve it). */
function rawUnreadByReceipts(world: World, user: ObjectId): Promise<number> {
  return db.collection('messages').countDocuments(
    {
      tenant_id: TENANT,
      conversation_id: world.conversation,
      deleted_at: null,
      sender_id: { $ne: user },
      'read_by.user_id': { $ne: user },
    },
    { limit: 100 },
  );
}

interface Row {
  members: number;
  operation: string;
  contender: string;
  medianMS: number;
  cpuMicros: number;
  commands: string;
}

async function measure(
  members: number,
  operation: string,
  contender: string,
  commands: string,
  world: World,
  call: (user: ObjectId) => Promise<unknown>,
  check?: (result: unknown) => void,
): Promise<Row> {
  const times: number[] = [];
  // The first reader warms up the code path (JIT, connections) and is not measured.
  const [warmUp, ...measured] = world.readers;
  const warmed = await call(warmUp as ObjectId);
  check?.(warmed);
  const cpu = process.cpuUsage();
  for (const reader of measured) {
    const started = performance.now();
    const result = await call(reader);
    times.push(performance.now() - started);
    check?.(result);
  }
  const used = process.cpuUsage(cpu);
  times.sort((a, b) => a - b);
  const row: Row = {
    members,
    operation,
    contender,
    medianMS: Number((times[Math.floor(times.length / 2)] ?? 0).toFixed(2)),
    cpuMicros: Math.round((used.user + used.system) / measured.length),
    commands,
  };
  out(
    `${String(members).padStart(6)}  ${operation.padEnd(16)} ${contender.padEnd(34)} ${String(row.medianMS).padStart(9)} ms ${String(row.cpuMicros).padStart(8)} µs CPU  ${commands}`,
  );
  return row;
}

const expectCount = (expected: number) => (result: unknown) => {
  if (result !== expected) throw new Error(`unread count ${String(result)}, expected ${expected}`);
};

const rows: Row[] = [];
const sizes: Array<{ members: number; conversationBytes: number; messageBytes: number }> = [];
for (const size of SIZES) {
  const worlds = { libNew: await seed(size), rawNew: await seed(size), libOld: await seed(size), rawOld: await seed(size) };
  const small = size <= DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO;
  const newCommands = small ? '1 find + 1 findAndModify + 1 find + 2 updateMany' : '1 find + 1 findAndModify';
  // Warm up the JIT and connections on the first reader of a spare world.
  await acme.messages.unreadCount(worlds.libNew.conversation, worlds.libNew.owner);
  rows.push(
    await measure(
      size,
      'unreadCount',
      'positions, caas-db',
      '1 find + 1 count',
      worlds.libNew,
      (user) => acme.messages.unreadCount(worlds.libNew.conversation, user),
      expectCount(UNREAD),
    ),
  );
  rows.push(
    await measure(
      size,
      'unreadCount',
      'positions, raw driver',
      '1 find + 1 count',
      worlds.rawNew,
      (user) => rawUnreadByPosition(worlds.rawNew, user),
      expectCount(UNREAD),
    ),
  );
  rows.push(
    await measure(
      size,
      'unreadCount',
      'per-message read_by, raw driver',
      '1 count (read_by scan)',
      worlds.rawOld,
      (user) => rawUnreadByReceipts(worlds.rawOld, user),
      expectCount(UNREAD),
    ),
  );
  rows.push(
    await measure(
      size,
      'mark read',
      'positions, caas-db',
      newCommands,
      worlds.libNew,
      (user) => acme.messages.markConversationRead(worlds.libNew.conversation, user),
      (result) => {
        if (!(result as { advanced: boolean }).advanced) throw new Error(`markConversationRead did not advance: ${JSON.stringify(result)}`);
      },
    ),
  );
  rows.push(
    await measure(size, 'mark read', 'positions, raw driver', newCommands, worlds.rawNew, (user) =>
      rawMarkConversationRead(worlds.rawNew, user, size),
    ),
  );
  rows.push(
    await measure(size, 'mark read', 'per-message markAsRead, caas-db', `${UNREAD} × 2 updates`, worlds.libOld, async (user) => {
      for (const id of worlds.libOld.messages) await acme.messages.markAsRead(id, user);
    }),
  );
  rows.push(
    await measure(size, 'mark read', 'per-message, raw driver', `${UNREAD} × 2 updates`, worlds.rawOld, (user) =>
      rawMarkEachRead(worlds.rawOld, user),
    ),
  );
  for (const world of Object.values(worlds)) {
    if (
      (await acme.messages.unreadCount(world.conversation, world.readers[0] as ObjectId)) !== 0 &&
      world !== worlds.rawOld &&
      world !== worlds.libOld
    )
      throw new Error(
        `a reader still has unread messages after marking: ${JSON.stringify({ position: await acme.conversations.readPosition(world.conversation, world.readers[0] as ObjectId), newest: world.messages.at(-1), rawCount: await rawUnreadByPosition(world, world.readers[0] as ObjectId) })} ${JSON.stringify(Object.entries(worlds).find(([, candidate]) => candidate === world)?.[0])} ${String(await acme.messages.unreadCount(world.conversation, world.readers[0] as ObjectId))}`,
      );
  }
  const conversation = await db.collection('conversations').findOne({ _id: worlds.libNew.conversation });
  const message = await db.collection('messages').findOne({ _id: worlds.libOld.messages[0] as ObjectId });
  sizes.push({
    members: size,
    conversationBytes: BSON.calculateObjectSize(conversation ?? {}),
    messageBytes: BSON.calculateObjectSize(message ?? {}),
  });
  out(
    `${String(size).padStart(6)}  stored: conversation with positions ${sizes.at(-1)?.conversationBytes} B, one message with every receipt ${sizes.at(-1)?.messageBytes} B\n`,
  );
}

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/read-receipts.json', import.meta.url),
  `${JSON.stringify({ machine, server: mongo.description, loadAverageAtEnd: loadavg(), unread: UNREAD, readers: READERS, rows, sizes }, null, 2)}\n`,
);
await raw.close();
await client.close();
await mongo.stop();
