/**
 * Write correctness: domain invariants no public write can break, exact denormalized state, input
 * bounds, and exactly-once writes when the network drops responses.
 */
import { startTcpProxy, type TcpProxy, waitFor } from '@caas-db/testing';
import { createTestDataLayer, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { MongoNetworkError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auditLogsDefinition,
  ConnectionError,
  type Conversation,
  classifyFailure,
  createDataClient,
  createDataLayer,
  type DataClient,
  InvariantError,
  type Message,
  messagesDefinition,
  ObjectId,
  Repository,
  TimeoutError,
  ValidationError,
} from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const [alice, bob] = [new ObjectId(), new ObjectId()];
const text = (encrypted: string, preview?: string) => ({
  type: 'text' as const,
  encrypted_data: encrypted,
  ...(preview !== undefined && { encrypted_preview: preview }),
});
let conversation: Conversation;

beforeAll(async () => {
  conversation = (await acme.conversations.createDirect([alice, bob])).conversation;
});

const send = (preview: string, extra: object = {}) =>
  acme.messages.create({ conversation_id: conversation._id, sender_id: alice, content: text('eA', preview), ...extra });

describe('domain invariants hold whatever write path is used', () => {
  it('refuses every generic write that would move a message status backwards or touch guarded fields', async () => {
    const message = await send('p');
    await acme.messages.markAsRead(message._id, bob);
    // Status moves backwards: refused, or (forward-only is a condition on the write) matching nothing.
    for (const attempt of [
      () => acme.messages.update(message._id, { status: 'sent' } as never),
      () => acme.messages.updateWith(message._id, { $set: { status: 'delivered' } }),
      () => acme.messages.updateMany({ _id: message._id }, { $set: { status: 'sent' } }),
      () => acme.messages.findOneAndUpdate({ _id: message._id }, { $set: { status: 'sent' } }),
      () => acme.messages.bulkWrite([{ updateWith: { id: message._id, update: { $set: { status: 'sent' } } } }]),
    ])
      await attempt().catch(() => undefined);
    // Guarded fields: refused with a typed error whatever the generic method.
    for (const update of [{ $set: { read_by: [] } }, { $unset: { reactions: '' } }, { $inc: { 'thread.reply_count': 5 } }]) {
      await expect(acme.messages.updateWith(message._id, update)).rejects.toBeInstanceOf(InvariantError);
      await expect(acme.messages.updateMany({ _id: message._id }, update)).rejects.toBeInstanceOf(InvariantError);
      const bulk = await acme.messages.bulkWrite([{ updateWith: { id: message._id, update } }]).catch((error: unknown) => error);
      expect(bulk).toBeInstanceOf(InvariantError);
    }
    const stored = await acme.messages.getById(message._id);
    expect(stored.status).toBe('read');
    expect(stored.read_by.map((receipt) => String(receipt.user_id))).toEqual([String(bob)]);
  });

  it('lets generic writes move a status forward only', async () => {
    const message = await send('forward');
    await acme.messages.updateWith(message._id, { $set: { status: 'delivered' } });
    expect((await acme.messages.getById(message._id)).status).toBe('delivered');
    await acme.messages.updateWith(message._id, { $set: { status: 'sent' } }).catch(() => undefined);
    expect((await acme.messages.getById(message._id)).status).toBe('delivered');
  });

  it('refuses replies created around messages.create, so reply counts stay exact', async () => {
    const parent = await send('parent');
    const reply = { conversation_id: conversation._id, sender_id: bob, content: text('eQ'), thread: { parent_id: parent._id } };
    await expect(acme.messages.createMany([reply as never, reply as never, reply as never])).rejects.toBeInstanceOf(InvariantError);
    await expect(acme.messages.bulkWrite([{ insert: reply as never }])).rejects.toBeInstanceOf(InvariantError);
    expect(await acme.messages.listReplies(parent._id)).toMatchObject({ items: [] });
    expect(await acme.messages.recountReplies(parent._id)).toEqual({ stored: 0, actual: 0 });
  });

  it('guards the model from repositories of any class over the same collection', async () => {
    const message = await send('raw');
    const generic = data.repository(messagesDefinition, Repository, 'acme');
    await expect(generic.updateWith(message._id, { $set: { read_by: [] } })).rejects.toBeInstanceOf(InvariantError);
    const stripped = data.repository({ ...messagesDefinition, invariants: {} }, Repository, 'acme');
    await expect(stripped.updateWith(message._id, { $set: { read_by: [] } })).rejects.toBeInstanceOf(InvariantError);
    class Sneaky extends (acme.messages.constructor as typeof Repository<typeof messagesDefinition.schema>) {
      forge(id: ObjectId) {
        return this.collection.updateOne('markAsRead', { _id: id }, { $set: { read_by: [] } });
      }
    }
    const sneaky = data.repository(messagesDefinition, Sneaky, 'acme');
    await expect(sneaky.forge(message._id)).rejects.toBeInstanceOf(InvariantError);
  });

  it('keeps audit logs append-only for every repository over them', async () => {
    const entry = await data.auditLogs.append({
      actor: { type: 'system', id: 'job' },
      action: 'a.b',
      target: { collection: 'users' },
      at: new Date(),
    });
    const generic = data.repository(auditLogsDefinition, Repository);
    await expect(generic.update(entry._id, { action: 'c.d' })).rejects.toBeInstanceOf(InvariantError);
    await expect(generic.delete(entry._id)).rejects.toBeInstanceOf(InvariantError);
    await expect(generic.updateMany({}, { $set: { action: 'c.d' } })).rejects.toBeInstanceOf(InvariantError);
    expect((await data.auditLogs.findById(entry._id))?.action).toBe('a.b');
  });

  it('removes a soft-deleted message’s search tokens', async () => {
    const message = await send('tokens', { search_tokens: ['abcdefgh12', 'ijklmnop34'], search_key_version: 1 });
    await acme.messages.softDelete(message._id);
    const stored = await acme.messages.findById(message._id, { includeDeleted: true });
    expect(stored?.search_tokens).toBeUndefined();
  });

  it('restores a message to the status it had', async () => {
    const message = await send('restore');
    await acme.messages.markDelivered(message._id);
    await acme.messages.softDelete(message._id);
    await acme.messages.restore(message._id);
    expect((await acme.messages.getById(message._id)).status).toBe('delivered');
  });
});

describe('last_message stays true', () => {
  it('moves to the newest live message on soft delete, away on deleting the only one, back on restore', async () => {
    const { conversation: room } = await acme.conversations.createDirect([alice, new ObjectId()]);
    const post = (preview: string) => acme.messages.create({ conversation_id: room._id, sender_id: alice, content: text('eA', preview) });
    const first = await post('first');
    const second = await post('second');
    const lastOf = async () => (await acme.conversations.getById(room._id)).last_message;
    expect(String((await lastOf())?.message_id)).toBe(String(second._id));
    await acme.messages.softDelete(second._id);
    expect(await lastOf()).toMatchObject({ message_id: first._id, content_preview: 'first' });
    await acme.messages.softDelete(first._id);
    expect(await lastOf()).toBeUndefined();
    await acme.messages.restore(second._id);
    expect(await lastOf()).toMatchObject({ message_id: second._id, content_preview: 'second' });
    expect(await acme.messages.verifyLastMessage(room._id)).toEqual({ consistent: true, messageId: second._id });
  });
});

describe('input bounds', () => {
  it.each([
    ['a number', 42],
    ['a string', 'reply'],
    ['unknown fields', { parent_id: new ObjectId(), pinned: true }],
    ['a forged count', { parent_id: new ObjectId(), reply_count: 999 }],
  ])('refuses a thread that is %s', async (_, thread) => {
    await expect(send('t', { thread })).rejects.toBeInstanceOf(ValidationError);
  });

  it('refuses a 20 MB message with a ValidationError naming the field, not a driver error', async () => {
    const keys = Object.fromEntries(Array.from({ length: 5000 }, (_, index) => [`u${index}`, 'k'.repeat(4096)]));
    const error = await acme.messages
      .create({ conversation_id: conversation._id, sender_id: alice, content: { ...text('eA'), encrypted_key: keys } })
      .catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).issues.some((issue) => issue.path.includes('encrypted_key'))).toBe(true);
  });
});

describe('message search pages past 50', () => {
  it('pages through every match exactly once, newest first', async () => {
    const token = 'pagetoken01';
    const created = await acme.messages.createMany(
      Array.from({ length: 120 }, () => ({
        conversation_id: conversation._id,
        sender_id: alice,
        content: text('eA'),
        search_tokens: [token],
      })),
    );
    expect(await acme.messages.searchMessages(token)).toHaveLength(50);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await acme.messages.searchMessagesPage(token, { limit: 50, cursor });
      seen.push(...page.items.map((message) => String(message._id)));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    expect(seen).toEqual(
      created
        .map((message) => String(message._id))
        .sort()
        .reverse(),
    );
  });
});

describe('retry classification', () => {
  it('treats the pool-cleared error that interrupts operations in flight as maybe applied', () => {
    const interrupted = new MongoNetworkError('Connection interrupted due to server monitor timeout');
    Object.defineProperty(interrupted, 'name', { value: 'PoolClearedOnNetworkError' });
    interrupted.addErrorLabel('PoolRequestedRetry');
    expect(classifyFailure(interrupted)).toBe('maybe-applied');
  });
});

describe('exactly once when responses are dropped (one-way partition)', () => {
  let proxy: TcpProxy;
  let client: DataClient;

  beforeAll(async () => {
    const [, host] = /^mongodb:\/\/(?:[^@/]*@)?([^/?,]+)/.exec(testEnvironment().mongo.uri) ?? [];
    proxy = await startTcpProxy(host ?? '');
    client = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { socketMS: 1500, serverSelectionMS: 5000, connectMS: 2000 },
      retry: { retries: 6, minDelayMS: 20, maxDelayMS: 200, maxElapsedMS: 30_000 },
    });
  });

  afterAll(async () => {
    await client.close();
    await proxy.stop();
  });

  /** A data layer that loses every response from the moment its first insert into `collection` is sent. */
  function partitionOnFirstInsert(collection: string): ReturnType<typeof createDataLayer> {
    let armed = true;
    return createDataLayer({
      client,
      middlewares: [
        {
          name: 'partition-on-insert',
          phase: 'transport',
          handle: (ctx, next) => {
            if (!armed || ctx.command.kind !== 'insertOne' || ctx.collection?.name !== collection) return next();
            armed = false;
            const sent = next();
            // The request is on its way: lose every response until `deliverResponses`.
            proxy.dropResponses();
            return sent;
          },
        },
      ],
    });
  }

  /** Delivers responses again at the client's first retry (the lost attempt timed out). */
  function healOnRetry(): Promise<void> {
    return new Promise<void>((resolve) => {
      const off = client.on('retry', () => {
        proxy.deliverResponses();
        off();
        resolve();
      });
    });
  }

  it('stores a message whose insert response was lost exactly once, and the caller sees success', async () => {
    const layer = partitionOnFirstInsert('messages');
    const healed = healOnRetry();
    const tenant = layer.forTenant('acme');
    const message = await tenant.messages.create({ conversation_id: conversation._id, sender_id: alice, content: text('eA', 'once') });
    await healed;
    const stored = await unsafeDatabase(client).collection('messages').countDocuments({ _id: message._id });
    expect(stored).toBe(1);
  });

  it('flags a non-idempotent write whose response was lost as outcome unknown, and does not apply it twice', async () => {
    const layer = partitionOnFirstInsert('users');
    const error = await layer
      .forTenant('acme')
      .users.create({ external_id: 'lost-response', profile: { display_name: 'Lost' } })
      .catch((failure: unknown) => failure);
    proxy.deliverResponses();
    expect(error instanceof TimeoutError || error instanceof ConnectionError).toBe(true);
    expect((error as TimeoutError).outcome).toBe('unknown');
    // Eventually present once (the server applied the first and only attempt).
    const stored = () => unsafeDatabase(client).collection('users').countDocuments({ external_id: 'lost-response' });
    await waitFor(async () => (await stored()) > 0, { what: 'the lost insert to be visible' });
    expect(await stored()).toBe(1);
  });
});

describe('exact reply counts under concurrency and dropped responses', () => {
  it('counts 100 concurrent replies exactly, callers re-sending with the same _id after an unknown outcome', async () => {
    const parent = await send('busy parent');
    const replies = Array.from({ length: 100 }, () => ({
      _id: new ObjectId(),
      conversation_id: conversation._id,
      sender_id: bob,
      content: text('eQ'),
      thread: { parent_id: parent._id },
    }));
    const createOnce = async (reply: (typeof replies)[number]): Promise<Message> => {
      for (;;) {
        try {
          return await acme.messages.create(reply);
        } catch (error) {
          if ((error as { outcome?: string }).outcome !== 'unknown') throw error;
        }
      }
    };
    await Promise.all(replies.map(createOnce));
    expect(await acme.messages.recountReplies(parent._id)).toEqual({ stored: 100, actual: 100 });
  });
});
