import { createDataLayer, ObjectId, ValidationError } from '@caas-db/core';
import { createTenancy } from '@caas-db/tenancy';
import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAnalytics, rollupKinds, type TrackedEvent } from '../src/index.js';

const client = createTestClient();
const data = createDataLayer({ client, plugins: [createTenancy({ requireActiveTenant: false })] });
const analytics = createAnalytics(data, { readPreference: 'primaryPreferred' });

/** A deterministic pseudo-random generator, so the generated month is the same on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

const users = Array.from({ length: 12 }, () => new ObjectId());
const conversations = Array.from({ length: 6 }, (_, index) => ({
  id: new ObjectId(),
  type: (['direct', 'group', 'channel'] as const)[index % 3] ?? 'direct',
}));
const generated: TrackedEvent[] = [];

beforeAll(async () => {
  await data.syncIndexes();
  const next = random(42);
  for (let day = 1; day <= 30; day += 1) {
    const count = 5 + Math.floor(next() * 10);
    for (let index = 0; index < count; index += 1) {
      const at = new Date(Date.UTC(2026, 10, day, Math.floor(next() * 24), Math.floor(next() * 60)));
      const user = users[Math.floor(next() * users.length)] as ObjectId;
      const conversation = conversations[Math.floor(next() * conversations.length)] ?? conversations[0];
      const roll = next();
      const event: TrackedEvent =
        roll < 0.6
          ? {
              type: 'message.sent',
              userId: user,
              conversationId: conversation?.id ?? new ObjectId(),
              conversationType: conversation?.type ?? 'direct',
              bytes: Math.floor(next() * 1000),
              at,
            }
          : roll < 0.75
            ? { type: 'user.active', userId: user, at }
            : roll < 0.9
              ? { type: 'conversation.created', conversationId: new ObjectId(), conversationType: 'group', userId: user, at }
              : { type: 'file.uploaded', userId: user, bytes: 100 + Math.floor(next() * 10_000), at };
      generated.push(event);
    }
  }
  const acme = analytics.forTenant('acme');
  for (const event of generated) await acme.track(event);
  // Another tenant's activity must never show in acme's numbers.
  await analytics.forTenant('globex').track({
    type: 'message.sent',
    userId: new ObjectId(),
    conversationId: new ObjectId(),
    conversationType: 'direct',
    at: new Date(Date.UTC(2026, 10, 3)),
  });
});

describe('rollups', () => {
  it('equal a from-scratch recomputation for every day of a generated month', async () => {
    for (let day = 1; day <= 30; day += 1) {
      const drift = await analytics.forTenant('acme').verifyDay(`2026-11-${String(day).padStart(2, '0')}`);
      expect(drift, `day ${day}`).toEqual([]);
    }
  });

  it('answer messages per day, totals and top conversations from the rollups', async () => {
    const acme = analytics.forTenant('acme');
    const sent = generated.filter((event): event is Extract<TrackedEvent, { type: 'message.sent' }> => event.type === 'message.sent');
    const perDay = await acme.messagesPerDay('2026-11-01', '2026-11-30');
    expect(perDay.reduce((sum, row) => sum + row.messages, 0)).toBe(sent.length);
    expect(perDay.reduce((sum, row) => sum + row.bytes, 0)).toBe(sent.reduce((sum, event) => sum + (event.bytes ?? 0), 0));
    const counts = new Map<string, number>();
    for (const event of sent) counts.set(String(event.conversationId), (counts.get(String(event.conversationId)) ?? 0) + 1);
    const expectedTop = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 3);
    expect((await acme.topConversations('2026-11-01', '2026-11-30', 3)).map((row) => [row.conversationId, row.messages])).toEqual(
      expectedTop,
    );
    const totals = await acme.dailyTotals('2026-11-01', '2026-11-30');
    expect(totals.reduce((sum, row) => sum + row.conversations, 0)).toBe(
      generated.filter((event) => event.type === 'conversation.created').length,
    );
    expect(totals.reduce((sum, row) => sum + row.files, 0)).toBe(generated.filter((event) => event.type === 'file.uploaded').length);
  });

  it('detects and repairs drift', async () => {
    const acme = data.forTenant('acme');
    await acme.aggregations.increment(rollupKinds.messages, '2026-11-05', 'direct', { messages: 7 });
    const drift = await analytics.forTenant('acme').verifyDay('2026-11-05', { repair: true });
    expect(drift).toHaveLength(1);
    expect(drift[0]).toMatchObject({ kind: rollupKinds.messages, period: '2026-11-05', key: 'direct' });
    expect(await analytics.forTenant('acme').verifyDay('2026-11-05')).toEqual([]);
  });
});

describe('repair under concurrency', () => {
  it('converges to the recomputed value when two data layers repair at once (20 rounds)', async () => {
    const day = '2026-12-05';
    const race = analytics.forTenant('race');
    for (let index = 0; index < 3; index += 1)
      await race.track({
        type: 'message.sent',
        userId: users[0] as ObjectId,
        conversationId: conversations[0]?.id as ObjectId,
        conversationType: 'direct',
        bytes: 10,
        at: new Date(Date.UTC(2026, 11, 5, 10, index)),
      });
    const instances = [1, 2].map(() =>
      createAnalytics(createDataLayer({ client, plugins: [createTenancy({ requireActiveTenant: false })] })).forTenant('race'),
    );
    const rollups = data.forTenant('race').aggregations;
    for (let round = 0; round < 20; round += 1) {
      if (round % 2 === 0) {
        await rollups.increment(rollupKinds.messages, day, 'direct', { messages: 7 });
      } else {
        // Lost altogether: both repairs would recreate it.
        const [row] = (await rollups.listPeriods(rollupKinds.messages, day, day)).filter((entry) => entry.key === 'direct');
        await rollups.delete(row?._id as ObjectId);
      }
      const drifts = await Promise.all(instances.map((instance) => instance.verifyDay(day, { repair: true })));
      expect(
        drifts.some((drift) => drift.length === 1),
        `round ${round}`,
      ).toBe(true);
      expect(await rollups.get(rollupKinds.messages, day, 'direct'), `round ${round}`).toEqual({ messages: 3, bytes: 30 });
      expect(await race.verifyDay(day), `round ${round}`).toEqual([]);
    }
  });
});

describe('active users', () => {
  it('counts DAU and MAU right on a fixture with known answers', async () => {
    const fixture = createAnalytics(data).forTenant('fixture');
    const [a, b, c] = [new ObjectId(), new ObjectId(), new ObjectId()];
    const day = (n: number) => new Date(Date.UTC(2026, 9, n, 12));
    await fixture.track({ type: 'user.active', userId: a, at: day(1) });
    await fixture.track({ type: 'message.sent', userId: a, conversationId: new ObjectId(), conversationType: 'direct', at: day(1) });
    await fixture.track({ type: 'user.active', userId: b, at: day(1) });
    await fixture.track({ type: 'user.active', userId: b, at: day(2) });
    await fixture.track({ type: 'file.uploaded', userId: c, bytes: 10, at: day(2) });
    await fixture.track({ type: 'user.active', userId: c, at: day(31) });
    expect(await fixture.dailyActiveUsers('2026-10-01')).toBe(2);
    expect(await fixture.dailyActiveUsers('2026-10-02')).toBe(2);
    expect(await fixture.dailyActiveUsers('2026-10-03')).toBe(0);
    expect(await fixture.monthlyActiveUsers('2026-10')).toBe(3);
    expect(await fixture.monthlyActiveUsersFromEvents('2026-10')).toBe(3);
    expect(await fixture.monthlyActiveUsers('2026-11')).toBe(0);
  });

  it('does not count a user whose raw events were erased, once the day is repaired', async () => {
    const tenant = data.forTenant('erasure');
    const erasure = createAnalytics(data).forTenant('erasure');
    const [erased, kept] = [new ObjectId(), new ObjectId()];
    const at = new Date(Date.UTC(2026, 11, 7, 9));
    await erasure.track({ type: 'user.active', userId: erased, at });
    await erasure.track({ type: 'message.sent', userId: erased, conversationId: new ObjectId(), conversationType: 'direct', at });
    await erasure.track({ type: 'user.active', userId: kept, at });
    expect(await erasure.dailyActiveUsers('2026-12-07')).toBe(2);
    expect(await erasure.monthlyActiveUsers('2026-12')).toBe(2);
    // The erasure of a user's raw events (e.g. a GDPR request).
    const events = await tenant.events.listInRange({ from: new Date(Date.UTC(2026, 11, 1)), to: new Date(Date.UTC(2027, 0, 1)) });
    for (const event of events.items) if (String(event.user_id) === String(erased)) await tenant.events.delete(event._id);
    const drift = await erasure.verifyDay('2026-12-07', { repair: true });
    expect(drift.map((entry) => entry.kind).sort()).toEqual([
      rollupKinds.conversationActivity,
      rollupKinds.messages,
      rollupKinds.activeUsers,
    ]);
    expect(await erasure.verifyDay('2026-12-07')).toEqual([]);
    expect(await erasure.dailyActiveUsers('2026-12-07')).toBe(1);
    expect(await erasure.verifyMonth('2026-12', { repair: true })).toHaveLength(1);
    expect(await erasure.verifyMonth('2026-12')).toEqual([]);
    expect(await erasure.monthlyActiveUsers('2026-12')).toBe(1);
    expect(await erasure.monthlyActiveUsersFromEvents('2026-12')).toBe(1);
  });

  it('refuses invalid input with typed errors', async () => {
    const acme = analytics.forTenant('acme');
    await expect(
      acme.track({ type: 'message.sent', userId: 'x', conversationId: new ObjectId(), conversationType: 'direct' }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(acme.track({ type: 'unknown' } as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(acme.dailyActiveUsers('yesterday')).rejects.toBeInstanceOf(ValidationError);
    await expect(acme.topConversations('2026-11-01', '2026-11-30', 0)).rejects.toBeInstanceOf(ValidationError);
  });
});
