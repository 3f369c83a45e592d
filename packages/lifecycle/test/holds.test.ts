import { ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { describe, expect, it } from 'vitest';
import { DAY_MS, LegalHoldError } from '../src/index.js';
import { cipher, START, setupLifecycle, strategies } from './support.js';

const operator = { type: 'operator' as const, id: 'legal-team' };

describe.each(strategies)('legal holds (%s strategy)', (strategy) => {
  const tenant = `hold-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant], { batchSize: 10 });
  const { data, lifecycle, clock, client } = setup;
  const repositories = () => data.forTenant(tenant);

  it('blocks purge, TTL expiry, hard delete and erase of what it covers; its release lets them proceed', async () => {
    clock.set(START);
    await lifecycle.policies.set(tenant, { messages: { keepDays: 7, deletedContentGraceDays: 1 }, events: { keepDays: 7 } });
    const [held, free] = await repositories().users.createMany([
      { external_id: 'held', profile: { display_name: 'Held Person' } },
      { external_id: 'free', profile: { display_name: 'Free Person' } },
    ]);
    if (!held || !free) throw new Error('users not created');
    const heldConversation = await repositories().conversations.createGroup({ type: 'group', ownerId: free._id, memberIds: [held._id] });
    const freeConversation = await repositories().conversations.createGroup({ type: 'group', ownerId: free._id });
    const sent = [];
    for (const [conversation, sender] of [
      [heldConversation._id, free._id],
      [freeConversation._id, free._id],
      [heldConversation._id, held._id],
    ] as const)
      sent.push(
        await repositories().messages.create({
          conversation_id: conversation,
          sender_id: sender,
          content: { type: 'text', encrypted_data: cipher('x') },
        }),
      );
    // Events are stamped with expire_at for the TTL index (tenant policy: 7 days).
    const heldEvent = await repositories().events.create({ type: 'user.active', user_id: held._id, occurred_at: clock() });
    const freeEvent = await repositories().events.create({ type: 'user.active', user_id: free._id, occurred_at: clock() });
    const stamped = await setup.raw(tenant, 'events');
    expect(stamped.map((event) => event.expire_at)).toEqual([
      new Date(START.getTime() + 7 * DAY_MS),
      new Date(START.getTime() + 7 * DAY_MS),
    ]);

    const userHold = await lifecycle.holds.place(tenant, {
      scope: 'user',
      userId: held._id,
      reason: 'litigation 2026-17',
      actor: operator,
    });
    const conversationHold = await lifecycle.holds.place(tenant, {
      scope: 'conversation',
      conversationId: heldConversation._id,
      reason: 'regulator request',
      actor: operator,
    });
    expect((await lifecycle.holds.list(tenant)).map((hold) => hold.id)).toEqual([userHold.id, conversationHold.id]);

    // TTL: the held user's event lost its expire_at, so the TTL monitor cannot remove it.
    const events = await setup.raw(tenant, 'events');
    expect(events.find((event) => String(event._id) === String(heldEvent._id))?.expire_at).toBeUndefined();
    expect(events.find((event) => String(event._id) === String(freeEvent._id))?.expire_at).toBeInstanceOf(Date);
    // What the TTL monitor does once expire_at passes (the test server ignores TTL indexes, so this
    // test applies the monitor's own predicate directly): only the unheld event goes.
    clock.set(new Date(START.getTime() + 30 * DAY_MS));
    await unsafeDatabase(client, await setup.databaseOf(tenant))
      .collection('events')
      .deleteMany({ expire_at: { $lte: clock() } });
    expect((await setup.raw(tenant, 'events')).map((event) => String(event._id))).toEqual([String(heldEvent._id)]);
    // A new event of a held user is not stamped at all.
    await repositories().events.create({ type: 'user.active', user_id: held._id, occurred_at: clock() });
    expect((await setup.raw(tenant, 'events', { user_id: held._id })).every((event) => event.expire_at === undefined)).toBe(true);

    // Purge: everything expired, but nothing held (the held conversation, the held user's messages and events).
    const report = await lifecycle.purge(tenant);
    expect(report.heldConversations).toBe(1);
    expect((await setup.raw(tenant, 'messages')).map((message) => String(message._id)).sort()).toEqual(
      [String(sent[0]?._id), String(sent[2]?._id)].sort(),
    );
    expect(await setup.raw(tenant, 'events', { user_id: held._id })).toHaveLength(2);

    // Hard delete and erase: refused with a typed error naming the hold; nothing changes.
    const refusal = await repositories()
      .users.delete(held._id)
      .catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(LegalHoldError);
    expect((refusal as LegalHoldError).hold).toMatchObject({ id: userHold.id, scope: 'user', target: String(held._id) });
    await expect(repositories().conversations.delete(heldConversation._id)).rejects.toMatchObject({
      code: 'E_LEGAL_HOLD',
      hold: { id: conversationHold.id },
    });
    await expect(repositories().messages.delete(sent[0]?._id ?? '')).rejects.toMatchObject({ code: 'E_LEGAL_HOLD' });
    const before = await setup.raw(tenant, 'messages');
    await expect(lifecycle.eraseUser(tenant, held._id, { actor: operator })).rejects.toMatchObject({
      code: 'E_LEGAL_HOLD',
      hold: { id: userHold.id },
    });
    // The free user's messages are in the held conversation too: their erasure is refused, naming that hold.
    await expect(lifecycle.eraseUser(tenant, free._id, { actor: operator })).rejects.toMatchObject({ hold: { id: conversationHold.id } });
    expect(await setup.raw(tenant, 'messages')).toEqual(before);
    expect(await setup.raw(tenant, 'users')).toHaveLength(2);

    // A tenant hold stops the whole purge.
    const tenantHold = await lifecycle.holds.place(tenant, { scope: 'tenant', reason: 'audit', actor: operator });
    await expect(lifecycle.purge(tenant)).rejects.toMatchObject({ code: 'E_LEGAL_HOLD', hold: { scope: 'tenant', id: tenantHold.id } });
    await expect(lifecycle.eraseTenant(tenant, operator)).rejects.toBeInstanceOf(LegalHoldError);

    // Released: purge, delete and erase proceed.
    for (const hold of [userHold, conversationHold, tenantHold])
      expect(await lifecycle.holds.release(tenant, hold.id, operator)).toBe(true);
    expect(await lifecycle.holds.release(tenant, userHold.id, operator)).toBe(false);
    const after = await lifecycle.purge(tenant);
    expect(after.heldConversations).toBe(0);
    expect(await setup.raw(tenant, 'messages')).toHaveLength(0);
    expect(await setup.raw(tenant, 'events', { user_id: held._id, occurred_at: { $lt: new Date(START.getTime() + DAY_MS) } })).toHaveLength(
      0,
    );
    const erased = await lifecycle.eraseUser(tenant, held._id, { actor: operator });
    expect(erased.counts.profile).toBe(1);
    expect(await setup.raw(tenant, 'users', { _id: held._id })).toHaveLength(0);
    expect(await repositories().conversations.delete(heldConversation._id)).toBe(true);

    const audit = (await data.auditLogs.listForTenant(tenant, { limit: 100 })).items.map((entry) => entry.action);
    expect(audit.filter((action) => action === 'legal_hold.place')).toHaveLength(3);
    expect(audit.filter((action) => action === 'legal_hold.release')).toHaveLength(3);
    expect(audit).toContain('lifecycle.purge_refused');
    expect(audit).toContain('user.erase_refused');
  });

  it('validates holds and refuses unknown input with typed errors', async () => {
    await expect(
      lifecycle.holds.place(tenant, { scope: 'user', userId: 'nope', reason: 'x', actor: operator } as never),
    ).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(lifecycle.holds.place(tenant, { scope: 'tenant', reason: '', actor: operator })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    await expect(lifecycle.holds.release(tenant, new ObjectId(), { type: 'nobody' } as never)).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    expect(await lifecycle.holds.release(tenant, new ObjectId(), operator)).toBe(false);
  });

  it('places holds concurrently with purges: a purge never removes what a hold placed before it covers', async () => {
    const owner = await repositories().users.create({ external_id: 'owner2', profile: { display_name: 'Owner Two' } });
    clock.set(START);
    const conversations = await Promise.all(
      Array.from({ length: 4 }, () => repositories().conversations.createGroup({ type: 'group', ownerId: owner._id })),
    );
    for (const conversation of conversations)
      await repositories().messages.create({
        conversation_id: conversation._id,
        sender_id: owner._id,
        content: { type: 'text', encrypted_data: cipher('y') },
      });
    clock.set(new Date(START.getTime() + 60 * DAY_MS));
    const holds = await Promise.all(
      conversations
        .slice(0, 2)
        .map((conversation) =>
          lifecycle.holds.place(tenant, { scope: 'conversation', conversationId: conversation._id, reason: 'r', actor: operator }),
        ),
    );
    await Promise.all([lifecycle.purge(tenant), lifecycle.purge(tenant)]);
    const left = await setup.raw(tenant, 'messages');
    expect(left.map((message) => String(message.conversation_id)).sort()).toEqual(
      conversations
        .slice(0, 2)
        .map((conversation) => String(conversation._id))
        .sort(),
    );
    for (const hold of holds) await lifecycle.holds.release(tenant, hold.id, operator);
  });
});
