import { ConfigError, createDataLayer, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createAnalytics } from '@caas-db/search';
import { createTenancy, type TenantUsageRepository } from '@caas-db/tenancy';
import { seed } from '@caas-db/testing';
import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DriftKind, verifyTenants } from '../src/index.js';

const client = createTestClient();
const tenancy = createTenancy({ audit: 'off', quotas: { limits: { documents: { messages: 100_000 } } } });
const data = createDataLayer({ client, plugins: [tenancy] });
const analytics = createAnalytics(data);
const tenant = 'seed-0001';
const today = new Date().toISOString().slice(0, 10);

const verify = (repair = false) =>
  verifyTenants({ data, tenants: [tenant], repair, usage: tenancy.usage as TenantUsageRepository, rollups: analytics, days: [today] }).then(
    ([result]) => result,
  );

beforeAll(async () => {
  await data.syncIndexes();
  await seed(data, { tenants: 1, usersPerTenant: 8, conversations: 5, messagesPerConversation: 6, replyRatio: 0.2, seed: 5 });
  const [user] = (await data.forTenant(tenant).users.findMany({}, { limit: 1 })).items;
  const [conversation] = (await data.forTenant(tenant).conversations.findMany({}, { limit: 1 })).items;
  for (let index = 0; index < 3; index += 1) {
    await analytics.forTenant(tenant).track({
      type: 'message.sent',
      userId: user?._id as ObjectId,
      conversationId: conversation?._id as ObjectId,
      conversationType: 'direct',
    });
  }
});

describe('verify', () => {
  it('finds nothing on data built through the repositories', async () => {
    const result = await verify();
    expect(result?.drift).toEqual([]);
    expect(result?.scanned).toBeGreaterThan(40);
  });

  it('finds injected drift of each kind, repairs all but schema drift, and finds nothing repairable after', async () => {
    const raw = unsafeDatabase(client);
    const messages = raw.collection('messages');
    const [plain] = await messages
      .find({ tenant_id: tenant, 'thread.parent_id': { $exists: false } })
      .limit(1)
      .toArray();
    const [parent] = await messages
      .find({ tenant_id: tenant, 'thread.reply_count': { $gt: 0 } })
      .limit(1)
      .toArray();
    const [conversation, other] = await raw.collection('conversations').find({ tenant_id: tenant }).limit(2).toArray();
    // Schema: a field no model declares. Reply count: off by three. last_message: gone.
    await messages.updateOne({ _id: plain?._id as ObjectId }, { $set: { bogus: true } });
    await messages.updateOne({ _id: parent?._id as ObjectId }, { $inc: { 'thread.reply_count': 3 } });
    await raw.collection('conversations').updateOne({ _id: conversation?._id as ObjectId }, { $unset: { last_message: '' } });
    // Participants: a user that does not exist.
    const ghost = new ObjectId();
    await raw.collection('conversations').updateOne({ _id: other?._id as ObjectId }, {
      $push: { participants: { user_id: ghost, role: 'member', joined_at: new Date(), settings: { muted: false, pinned: false } } },
    } as never);
    // Quota usage: a counter five documents off. Rollups: a day's rollups lost.
    await raw.collection('tenant_usage').updateOne({ _id: `${tenant}:messages` } as never, { $inc: { documents: 5 } });
    const lostRollups = await raw.collection('aggregations').deleteMany({ tenant_id: tenant, period: today });
    expect(lostRollups.deletedCount).toBeGreaterThan(0);

    const found = await verify();
    const kinds = (result: typeof found) => [...new Set(result?.drift.map((entry) => entry.kind))].sort();
    const all: DriftKind[] = ['last_message', 'participants', 'quota_usage', 'reply_count', 'rollups', 'schema'];
    expect(kinds(found)).toEqual(all);
    expect(found?.drift.find((entry) => entry.kind === 'schema')).toMatchObject({
      subject: `messages/${String(plain?._id)}`,
      repairable: false,
    });
    expect(found?.drift.find((entry) => entry.kind === 'participants')?.subject).toBe(`users/${String(ghost)}`);

    const repaired = await verify(true);
    expect(kinds(repaired)).toEqual(all);
    for (const entry of repaired?.drift ?? [])
      expect(entry.repaired ?? false, `${entry.kind} ${entry.subject}`).toBe(entry.kind !== 'schema');

    const after = await verify();
    expect(kinds(after)).toEqual(['schema']);
  });

  it('refuses bad options', async () => {
    await expect(verifyTenants({ data, tenants: [tenant], kinds: ['nonsense' as DriftKind] })).rejects.toBeInstanceOf(ConfigError);
    await expect(verifyTenants({ data, tenants: [tenant], days: ['yesterday'] })).rejects.toBeInstanceOf(ConfigError);
  });
});
