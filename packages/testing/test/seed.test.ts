import { ConfigError, createDataLayer, type DataLayer, type Message, type Page } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTestClient } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { seed } from '../src/index.js';

const options = { tenants: 2, usersPerTenant: 30, conversations: 20, messagesPerConversation: 10, zipf: 1.1, seed: 42, batchSize: 50 };

/** What a seeded database holds, ids included, in a comparable form. */
async function contents(data: ReturnType<typeof createDataLayer>, tenant: string) {
  const repositories = data.forTenant(tenant);
  const users = (await repositories.users.findMany({}, { limit: 500 })).items.map((user) => [String(user._id), user.external_id]);
  const conversations = (await repositories.conversations.findMany({}, { limit: 500 })).items.map((conversation) => [
    String(conversation._id),
    conversation.participants.map((participant) => String(participant.user_id)),
    String(conversation.last_message?.message_id),
  ]);
  const messages = [];
  let cursor: string | null = null;
  do {
    const page: Page<Message> = await repositories.messages.findMany({}, { limit: 500, ...(cursor && { cursor }) });
    messages.push(
      ...page.items.map((message) => [String(message._id), String(message.conversation_id), message.content.encrypted_preview]),
    );
    cursor = page.nextCursor;
  } while (cursor);
  return { users, conversations, messages };
}

/** Every stored document of a seeded database, in `_id` order (clients without their generated `_id`). */
async function dump(data: DataLayer) {
  const database = unsafeDatabase(data.client);
  const all = async (name: string) => database.collection(name).find({}).sort({ _id: 1 }).toArray();
  const clients = (await database.collection('clients').find({}).sort({ tenant_id: 1 }).toArray()).map(({ _id, ...rest }) => rest);
  return { clients, users: await all('users'), conversations: await all('conversations'), messages: await all('messages') };
}

describe('seed', () => {
  const first = createDataLayer({ client: createTestClient() });

  it('builds valid data through the repositories, deterministic by seed', async () => {
    const progress: number[] = [];
    const result = await seed(first, { ...options, onProgress: (event) => progress.push(event.documents) });
    expect(result).toMatchObject({ tenants: ['seed-0001', 'seed-0002'], users: 60, conversations: 40, messages: 400, interrupted: false });
    expect(result.replies).toBeGreaterThan(0);
    expect(progress.at(-1)).toBe(500);
    for (const tenant of result.tenants) expect(await first.forTenant(tenant).messages.count()).toBe(200);
    {
      const tenant = 'seed-0002';
      const repositories = first.forTenant(tenant);
      // Every conversation's last_message is its newest message; every reply is counted on its parent.
      for (const conversation of (await repositories.conversations.findMany({}, { limit: 500 })).items) {
        expect((await repositories.messages.verifyLastMessage(conversation._id)).consistent).toBe(true);
      }
      const replies = await repositories.messages.findMany({ 'thread.parent_id': { $exists: true } } as never, { limit: 500 });
      for (const parentId of new Set(replies.items.map((reply) => String(reply.thread?.parent_id)))) {
        const { stored, actual } = await repositories.messages.recountReplies(parentId);
        expect(stored).toBe(actual);
      }
      expect(await first.clients.findByTenantId(tenant)).toMatchObject({ status: 'active' });
    }
    // The same seed on another database gives the same documents, ids included.
    const second = createDataLayer({ client: createTestClient({ database: `${first.client.databaseName}_b` }) });
    await seed(second, options);
    expect(await contents(second, 'seed-0001')).toEqual(await contents(first, 'seed-0001'));
    await second.admin.dropDatabase();
  });

  it('skews conversation sizes by zipf', async () => {
    const data = createDataLayer({ client: createTestClient({ database: `${first.client.databaseName}_z` }) });
    await seed(data, { tenants: 1, usersPerTenant: 20, conversations: 20, messagesPerConversation: 20, zipf: 1.5, seed: 3, replyRatio: 0 });
    const sizes: number[] = [];
    for (const conversation of (await data.forTenant('seed-0001').conversations.findMany({}, { limit: 500 })).items) {
      sizes.push(await data.forTenant('seed-0001').messages.count({ conversation_id: conversation._id } as never));
    }
    sizes.sort((a, b) => b - a);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(400);
    expect(sizes[0]).toBeGreaterThan(5 * (sizes[10] ?? 1));
    await data.admin.dropDatabase();
  });

  it('stops at a batch boundary when signalled, and refuses bad options', async () => {
    const data = createDataLayer({ client: createTestClient({ database: `${first.client.databaseName}_s` }) });
    const controller = new AbortController();
    const result = await seed(data, {
      ...options,
      tenants: 1,
      onProgress: (event) => {
        if (event.phase === 'messages') controller.abort();
      },
      signal: controller.signal,
    });
    expect(result.interrupted).toBe(true);
    expect(result.messages).toBeLessThan(200);
    await expect(seed(data, { ...options, tenants: 0 })).rejects.toBeInstanceOf(ConfigError);
    await expect(seed(data, { ...options, zipf: -1 })).rejects.toBeInstanceOf(ConfigError);
    await data.admin.dropDatabase();
  });

  it('resumes after an interruption: a rerun skips what is stored (by _id) and ends identical to an uninterrupted run', async () => {
    // One clock for all three databases: timestamps are part of the comparison.
    const now = () => new Date(Date.UTC(2026, 5, 1, 12));
    const layer = (suffix: string) =>
      createDataLayer({ client: createTestClient({ database: `${first.client.databaseName}_${suffix}` }), now });
    const whole = layer('w');
    const uninterrupted = await seed(whole, options);
    const expected = await dump(whole);
    expect(expected.messages.length).toBe(400);

    for (const [suffix, stopAt] of [
      ['m', 'messages'],
      ['r', 'replies'],
    ] as const) {
      const data = layer(suffix);
      const controller = new AbortController();
      const stopped = await seed(data, {
        ...options,
        signal: controller.signal,
        onProgress: (event) => {
          if (event.phase === stopAt) controller.abort();
        },
      });
      expect(stopped.interrupted).toBe(true);
      const messages = unsafeDatabase(data.client).collection('messages');
      if (stopAt === 'messages') {
        // A crash inside an unordered batch leaves some of its documents stored and not others.
        const stored = await messages
          .find({}, { projection: { _id: 1 } })
          .sort({ _id: 1 })
          .toArray();
        await messages.deleteMany({ _id: { $in: stored.filter((_, index) => index % 3 === 1).map((row) => row._id) } });
      }
      const partial = await messages.countDocuments();
      expect(partial).toBeGreaterThan(0);
      expect(partial).toBeLessThan(400);

      const resumed = await seed(data, options);
      expect(resumed).toMatchObject({ interrupted: false, users: 60, conversations: 40, messages: 400, replies: uninterrupted.replies });
      expect(resumed.existing).toBeGreaterThan(0);
      const got = await dump(data);
      for (const key of Object.keys(expected) as Array<keyof typeof expected>)
        expect({ [key]: got[key] }, suffix).toEqual({ [key]: expected[key] });
      await data.admin.dropDatabase();
    }
    await whole.admin.dropDatabase();
  });
});
