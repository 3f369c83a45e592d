import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDataLayer, DuplicateKeyError, type Middleware, ObjectId, ValidationError } from '../src/index.js';

const client = createTestClient();
// These messages reference conversations the test does not create: the reference check is off.
const data = createDataLayer({
  client,
  integrity: { messages: false },
  batching: { messages: { maxBatch: 100, maxWaitMS: 5 }, findById: true },
});

/** Counts commands by name on a collection while `action` runs. */
async function commandsDuring(collection: string, action: () => Promise<unknown>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const stop = client.on('command:succeeded', (event) => {
    if (event.collection === collection) counts[event.commandName] = (counts[event.commandName] ?? 0) + 1;
  });
  await action();
  stop();
  return counts;
}

beforeAll(async () => {
  await data.syncIndexes();
});

describe('write batching (messages.create)', () => {
  it('coalesces 250 concurrent sends into a handful of unordered insertMany commands, each call getting its own message', async () => {
    const acme = data.forTenant('acme');
    const conversations = [new ObjectId(), new ObjectId()];
    let created: Awaited<ReturnType<typeof acme.messages.create>>[] = [];
    const counts = await commandsDuring('messages', async () => {
      created = await Promise.all(
        Array.from({ length: 250 }, (_, index) =>
          acme.messages.create({
            conversation_id: conversations[index % 2] as ObjectId,
            sender_id: new ObjectId(),
            content: { type: 'text', encrypted_data: `bTE${index}` },
          }),
        ),
      );
    });
    // Natural batching: the first calls go out at once (four slots), the rest leave in batches.
    expect(counts.insert).toBeLessThanOrEqual(4 + Math.ceil(250 / 100) + 1);
    expect(new Set(created.map((message) => message._id.toHexString())).size).toBe(250);
    expect(await acme.messages.count()).toBe(250);
    for (const conversation of conversations) {
      const [newest] = (await acme.messages.findByConversation(conversation, { limit: 1 })).items;
      expect((await acme.conversations.findById(conversation))?.last_message).toBeUndefined();
      expect(newest).toBeDefined();
    }
  });

  it("sends a lone caller's message as a plain insertOne, and batches only what arrives while one is in flight", async () => {
    const kinds: string[] = [];
    const recorder: Middleware = {
      name: 'record-kinds',
      phase: 'transport',
      handle(ctx, next) {
        if (ctx.collection?.name === 'messages') kinds.push(ctx.command.kind);
        return next();
      },
    };
    const recorded = createDataLayer({
      client,
      integrity: { messages: false },
      batching: { messages: { maxBatch: 100, maxWaitMS: 5 } },
      middlewares: [recorder],
    });
    const acme = recorded.forTenant('acme');
    const message = () => ({
      conversation_id: new ObjectId(),
      sender_id: new ObjectId(),
      content: { type: 'text' as const, encrypted_data: 'eA' },
    });
    for (let index = 0; index < 5; index += 1) await acme.messages.create(message());
    expect(kinds).toEqual(Array(5).fill('insertOne'));
    kinds.length = 0;
    const sent = await Promise.all(Array.from({ length: 60 }, () => acme.messages.create(message())));
    expect(new Set(sent.map((stored) => stored._id.toHexString())).size).toBe(60);
    expect(kinds[0]).toBe('insertOne');
    expect(kinds).toContain('insertMany');
    expect(kinds.length).toBeLessThan(60);
  });

  it('keeps the newest message as last_message of each conversation', async () => {
    const acme = data.forTenant('acme');
    const { conversation } = await acme.conversations.createDirect([new ObjectId(), new ObjectId()]);
    const sent = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        acme.messages.create({
          conversation_id: conversation._id,
          sender_id: new ObjectId(),
          content: { type: 'text', encrypted_data: `eA${index}` },
        }),
      ),
    );
    const last = sent.reduce((newest, message) => (message._id.toHexString() > newest._id.toHexString() ? message : newest));
    expect((await acme.conversations.getById(conversation._id)).last_message?.message_id).toEqual(last._id);
  });

  it('reports a failure to its own caller only, and validates before batching', async () => {
    const acme = data.forTenant('acme');
    const duplicate = new ObjectId();
    await acme.messages.create({
      _id: duplicate,
      conversation_id: new ObjectId(),
      sender_id: new ObjectId(),
      content: { type: 'text', encrypted_data: 'eA' },
    });
    const outcomes = await Promise.allSettled([
      acme.messages.create({
        conversation_id: new ObjectId(),
        sender_id: new ObjectId(),
        content: { type: 'text', encrypted_data: 'b2s' },
      }),
      acme.messages.create({
        _id: duplicate,
        conversation_id: new ObjectId(),
        sender_id: new ObjectId(),
        content: { type: 'text', encrypted_data: 'ZHVw' },
      }),
      acme.messages.create({
        conversation_id: new ObjectId(),
        sender_id: new ObjectId(),
        content: { type: 'text', encrypted_data: 'b2sy' },
      }),
      acme.messages.create({ conversation_id: 'bad' as never, sender_id: new ObjectId(), content: { type: 'text', encrypted_data: 'eA' } }),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(DuplicateKeyError);
    expect((outcomes[3] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError);
  });

  it('never mixes tenants in one batch', async () => {
    const conversation = new ObjectId();
    await Promise.all(
      ['acme', 'globex', 'acme', 'globex'].map((tenant) =>
        data
          .forTenant(tenant)
          .messages.create({ conversation_id: conversation, sender_id: new ObjectId(), content: { type: 'text', encrypted_data: tenant } }),
      ),
    );
    const acme = await data.forTenant('acme').messages.findByConversation(conversation, { limit: 10 });
    const globex = await data.forTenant('globex').messages.findByConversation(conversation, { limit: 10 });
    expect(acme.items.map((message) => message.content.encrypted_data)).toEqual(['acme', 'acme']);
    expect(globex.items.map((message) => message.content.encrypted_data)).toEqual(['globex', 'globex']);
  });
});

describe('read batching (findById)', () => {
  it('coalesces concurrent reads by id into $in queries, per tenant and options', async () => {
    const acme = data.forTenant('acme');
    const users = await acme.users.createMany(
      Array.from({ length: 30 }, (_, index) => ({ external_id: `batched-${index}`, profile: { display_name: `U${index}` } })),
    );
    let found: unknown[] = [];
    const counts = await commandsDuring('users', async () => {
      found = await Promise.all([...users.map((user) => acme.users.findById(user._id)), acme.users.findById(new ObjectId())]);
    });
    // Four single reads fill the slots; the other 27 leave together in one $in query.
    expect(counts.find).toBe(5);
    expect(found.slice(0, 30).map((user) => (user as { external_id: string }).external_id)).toEqual(users.map((user) => user.external_id));
    expect(found[30]).toBeNull();
    const projected = await Promise.all(users.slice(0, 3).map((user) => acme.users.findById(user._id, { projection: { external_id: 1 } })));
    expect(projected.map((user) => Object.keys(user ?? {}).sort())).toEqual([
      ['_id', 'external_id'],
      ['_id', 'external_id'],
      ['_id', 'external_id'],
    ]);
    expect(await data.forTenant('globex').users.findById(users[0]?._id ?? '')).toBeNull();
  });
});
