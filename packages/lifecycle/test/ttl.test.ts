/**
 * TTL expiry of events against legal holds. MongoDB's TTL monitor removes a document once the date
 * in its TTL field has passed; a document without that field is never removed. The lifecycle stamps
 * `expire_at` only on events no hold covers, removes it from what a new hold covers, and its purge
 * takes it off held events a stale view of the holds stamped. The test server accepts TTL indexes
 * but never expires anything: the monitor itself is tested where MONGODB_URI is a real MongoDB.
 */
import { eventsDefinition, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { waitFor } from '@caas-db/testing';
import { requireCapability } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DAY_MS } from '../src/index.js';
import { START, setupLifecycle, strategies } from './support.js';

const operator = { type: 'operator' as const, id: 'legal-team' };

describe.each(strategies)('TTL expiry and legal holds (%s strategy)', (strategy) => {
  const tenant = `ttl-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant]);
  const { data, lifecycle, clock, client } = setup;
  const events = async () => unsafeDatabase(client, await setup.databaseOf(tenant)).collection('events');

  it('declares a TTL index on expire_at that expires at the stamped date and is synced as declared', async () => {
    const declared = eventsDefinition.indexes.find((index) => index.name === 'expire_at_ttl');
    // expireAfterSeconds 0: the stamped date is the expiry itself. No partial filter: a held event
    // is protected by carrying no expire_at at all, which the monitor never matches.
    expect(declared).toMatchObject({ key: { expire_at: 1 }, expireAfterSeconds: 0 });
    expect(declared?.partialFilterExpression).toBeUndefined();
    await data.forTenant(tenant).events.create({ type: 'user.active', user_id: new ObjectId(), occurred_at: clock() });
    const onServer = (await (await events()).listIndexes().toArray()).find((index) => index.name === 'expire_at_ttl');
    expect(onServer).toMatchObject({ key: { expire_at: 1 }, expireAfterSeconds: 0 });
  });

  it('a purge takes expire_at off held events a stale view of the holds stamped, and only those', async () => {
    clock.set(START);
    await lifecycle.policies.set(tenant, { events: { keepDays: 30 } });
    const held = new ObjectId();
    const free = new ObjectId();
    await lifecycle.holds.place(tenant, { scope: 'user', userId: held, reason: 'litigation', actor: operator });
    // Another instance whose cached view predates the hold stamped these (written directly here).
    const expireAt = new Date(START.getTime() + 30 * DAY_MS);
    await (await events()).insertMany(
      [held, free].map((user) => ({
        tenant_id: tenant,
        type: 'user.active',
        user_id: user,
        occurred_at: START,
        expire_at: expireAt,
        schema_version: 1,
        created_at: START,
        updated_at: START,
      })),
    );
    const report = await lifecycle.purge(tenant, { rules: ['events'] });
    expect(report.counts.events).toBe(0);
    const stored = await setup.raw(tenant, 'events', { user_id: { $in: [held, free] } });
    expect(stored.map((event) => [String(event.user_id), event.expire_at])).toEqual([
      [String(held), undefined],
      [String(free), expireAt],
    ]);
  });

  it('a changed events rule takes the old stamps off, so the TTL monitor never removes an event earlier than the new rule', async () => {
    clock.set(START);
    const user = new ObjectId();
    await lifecycle.policies.set(tenant, { events: { keepDays: 7 } });
    const first = await data.forTenant(tenant).events.create({ type: 'user.active', user_id: user, occurred_at: START });
    expect((await setup.raw(tenant, 'events', { _id: first._id }))[0]?.expire_at).toEqual(new Date(START.getTime() + 7 * DAY_MS));
    // Kept forever now: the stamp made under 7 days must go, or the monitor removes it on day 7.
    await lifecycle.policies.set(tenant, { events: { keepDays: null } });
    expect((await setup.raw(tenant, 'events', { _id: first._id }))[0]?.expire_at).toBeUndefined();
    await lifecycle.policies.set(tenant, { events: { keepDays: 30 } });
    const second = await data.forTenant(tenant).events.create({ type: 'user.active', user_id: user, occurred_at: START });
    expect((await setup.raw(tenant, 'events', { _id: second._id }))[0]?.expire_at).toEqual(new Date(START.getTime() + 30 * DAY_MS));
    // Longer: the 30-day stamp goes too; the engine removes the event by the 60-day rule.
    await lifecycle.policies.set(tenant, { events: { keepDays: 60 } });
    expect((await setup.raw(tenant, 'events', { user_id: user })).map((event) => event.expire_at)).toEqual([undefined, undefined]);
    // The same rule again changes nothing.
    const third = await data.forTenant(tenant).events.create({ type: 'user.active', user_id: user, occurred_at: START });
    await lifecycle.policies.set(tenant, { events: { keepDays: 60 }, messages: { keepDays: 10 } });
    expect((await setup.raw(tenant, 'events', { _id: third._id }))[0]?.expire_at).toEqual(new Date(START.getTime() + 60 * DAY_MS));
  });

  it('the TTL monitor removes expired unheld events and never a held one (real MongoDB)', { timeout: 240_000 }, async (context) => {
    requireCapability(context, 'ttlIndexes');
    // The monitor runs on the server's wall clock (every 60 s by default), not the lifecycle clock.
    const now = Date.now();
    clock.set(new Date(now));
    await lifecycle.policies.set(tenant, { events: { keepDays: 1 } });
    const held = new ObjectId();
    const free = new ObjectId();
    const occurred = new Date(now - 2 * DAY_MS);
    // The hold first (a stamp the hold takes off later could race the monitor): the held user's
    // event is written without expire_at, the other one already past it.
    await lifecycle.holds.place(tenant, { scope: 'user', userId: held, reason: 'litigation', actor: operator });
    const [heldEvent, freeEvent] = await data.forTenant(tenant).events.createMany([
      { type: 'user.active', user_id: held, occurred_at: occurred },
      { type: 'user.active', user_id: free, occurred_at: occurred },
    ]);
    if (!heldEvent || !freeEvent) throw new Error('events not created');
    const collection = await events();
    expect((await collection.findOne({ _id: heldEvent._id }))?.expire_at).toBeUndefined();
    expect((await collection.findOne({ _id: freeEvent._id }))?.expire_at).toEqual(new Date(occurred.getTime() + DAY_MS));
    await waitFor(async () => (await collection.countDocuments({ _id: freeEvent._id })) === 0, {
      what: 'the TTL monitor removed the expired unheld event',
      timeoutMS: 180_000,
      intervalMS: 1000,
    });
    expect(await collection.countDocuments({ _id: heldEvent._id })).toBe(1);
  });
});
