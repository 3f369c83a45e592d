import { createTestDataLayer, refusalCheck } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { NotFoundError, ObjectId, TenantContextError, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');

const expectNoWrites = refusalCheck(data.client, ValidationError);

describe('conversations.createDirect', () => {
  it('creates one direct conversation per pair, whatever the order of the ids', async () => {
    const [a, b] = [new ObjectId(), new ObjectId()];
    const first = await acme.conversations.createDirect([a, b]);
    const second = await acme.conversations.createDirect([b.toHexString(), a.toHexString()]);
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.conversation._id).toEqual(first.conversation._id);
    expect(first.conversation.participants.map((participant) => participant.role)).toEqual(['member', 'member']);
    const elsewhere = await globex.conversations.createDirect([a, b]);
    expect(elsewhere.created).toBe(true);
  });

  it('yields exactly one conversation for 50 concurrent creates of the same pair', async () => {
    const [a, b] = [new ObjectId(), new ObjectId()];
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, index) => acme.conversations.createDirect(index % 2 ? [a, b] : [b, a])),
    );
    expect(new Set(results.map((result) => result.conversation._id.toHexString())).size).toBe(1);
    expect(results.filter((result) => result.created)).toHaveLength(1);
    const stored = (await acme.conversations.listForUser(a, { limit: 500 })).items.filter(
      (conversation) => conversation.type === 'direct' && conversation.participants.some((participant) => participant.user_id.equals(b)),
    );
    expect(stored).toHaveLength(1);
  });

  it('refuses a pair of the same user, invalid ids, and an unbound tenant', async () => {
    const a = new ObjectId();
    await expectNoWrites(() => acme.conversations.createDirect([a, a]));
    await expectNoWrites(() => acme.conversations.createDirect([a, 'zz' as never]));
    await expectNoWrites(() => acme.conversations.createDirect([a] as never));
    await expectNoWrites(() => data.conversations.createDirect([a, new ObjectId()]), TenantContextError);
  });
});

describe('conversations groups: join, leave, roles, mute and pin', () => {
  it('manages participants and per-participant settings', async () => {
    const [owner, member, newcomer] = [new ObjectId(), new ObjectId(), new ObjectId()];
    const group = await acme.conversations.createGroup({
      type: 'group',
      ownerId: owner,
      memberIds: [member, member, owner],
      metadata: { name: 'Team' },
    });
    expect(group.participants.map((participant) => participant.role)).toEqual(['owner', 'member']);
    expect(group.metadata).toEqual({ name: 'Team' });
    const joins = await Promise.all(Array.from({ length: 10 }, () => acme.conversations.join(group._id, newcomer)));
    expect(joins.filter(Boolean)).toHaveLength(1);
    expect(await acme.conversations.isParticipant(group._id, newcomer)).toBe(true);
    await acme.conversations.setRole(group._id, newcomer, 'admin');
    await acme.conversations.setMuted(group._id, newcomer, true);
    await acme.conversations.setPinned(group._id, member, true);
    const reloaded = await acme.conversations.getById(group._id);
    const byUser = new Map(reloaded.participants.map((participant) => [participant.user_id.toHexString(), participant]));
    expect(byUser.get(newcomer.toHexString())).toMatchObject({ role: 'admin', settings: { muted: true, pinned: false } });
    expect(byUser.get(member.toHexString())?.settings).toEqual({ muted: false, pinned: true });
    expect(await acme.conversations.leave(group._id, newcomer)).toBe(true);
    expect(await acme.conversations.leave(group._id, newcomer)).toBe(false);
    await expect(acme.conversations.setMuted(group._id, newcomer, true)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses joining a direct conversation and invalid settings, writing nothing', async () => {
    const { conversation } = await acme.conversations.createDirect([new ObjectId(), new ObjectId()]);
    await expectNoWrites(() => acme.conversations.join(conversation._id, new ObjectId()));
    await expectNoWrites(() => acme.conversations.setMuted(conversation._id, new ObjectId(), 'yes' as never));
    await expectNoWrites(() => acme.conversations.setRole(conversation._id, new ObjectId(), 'god' as never));
    await expectNoWrites(() => acme.conversations.createGroup({ type: 'direct' as never, ownerId: new ObjectId() }));
    await expectNoWrites(() =>
      acme.conversations.createGroup({ type: 'group', ownerId: new ObjectId(), metadata: { name: 'x'.repeat(257) } }),
    );
  });
});

describe('conversations.listForUser', () => {
  it('lists a user’s conversations by last activity, with keyset pages', async () => {
    const user = new ObjectId();
    const created = [];
    for (let index = 0; index < 5; index += 1) created.push((await acme.conversations.createDirect([user, new ObjectId()])).conversation);
    // New activity in the oldest conversation moves it to the top.
    const oldest = created[0];
    if (!oldest) throw new Error('no conversation');
    await acme.messages.create({ conversation_id: oldest._id, sender_id: user, content: { type: 'text', encrypted_data: 'c2VjcmV0' } });
    const first = await acme.conversations.listForUser(user, { limit: 3 });
    expect(first.items[0]?._id).toEqual(oldest._id);
    expect(first.items[0]?.last_message?.sender_id).toEqual(user);
    const second = await acme.conversations.listForUser(user, { limit: 3, cursor: first.nextCursor });
    expect(second.nextCursor).toBeNull();
    const ids = [...first.items, ...second.items].map((conversation) => conversation._id.toHexString());
    expect(new Set(ids).size).toBe(5);
    expect((await globex.conversations.listForUser(user)).items).toEqual([]);
  });

  it('lists a tenant’s channels', async () => {
    await acme.conversations.createGroup({ type: 'channel', ownerId: new ObjectId(), metadata: { name: 'general' } });
    const channels = await acme.conversations.listByType('channel');
    expect(channels.items.every((conversation) => conversation.type === 'channel')).toBe(true);
    expect(channels.items.length).toBeGreaterThan(0);
  });
});
