import { createTestDataLayer, snapshotDatabase } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO, NotFoundError, ObjectId, TenantContextError, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');

const ids = (count: number) => Array.from({ length: count }, () => new ObjectId());

async function group(owner: ObjectId, members: ObjectId[]) {
  return acme.conversations.createGroup({ type: 'group', ownerId: owner, memberIds: members });
}

async function send(conversationId: ObjectId, sender: ObjectId, count: number) {
  const sent = [];
  for (let index = 0; index < count; index += 1) {
    sent.push(
      await acme.messages.create({
        conversation_id: conversationId,
        sender_id: sender,
        content: { type: 'text', encrypted_data: `Y2lwaGVy${index}` },
      }),
    );
  }
  return sent;
}

describe('messages.markConversationRead', () => {
  it('moves the reader’s position to the newest message and adds receipts in a small group', async () => {
    const [alice, bob, carol] = ids(3) as [ObjectId, ObjectId, ObjectId];
    const conversation = await group(alice, [bob, carol]);
    const fromAlice = await send(conversation._id, alice, 3);
    const [own] = await send(conversation._id, bob, 1);
    const before = await acme.conversations.getById(conversation._id);

    const mark = await acme.messages.markConversationRead(conversation._id, bob);
    expect(mark).toEqual({ advanced: true, messageId: own?._id, receipts: 3 });
    const position = await acme.conversations.readPosition(conversation._id, bob);
    expect(position?.messageId).toEqual(own?._id);
    expect(position?.readAt).toBeInstanceOf(Date);
    for (const message of fromAlice) {
      const stored = await acme.messages.getById(message._id);
      expect(stored.status).toBe('read');
      expect(stored.read_by.map((receipt) => String(receipt.user_id))).toEqual([String(bob)]);
    }
    // Bob's own message gets no receipt from Bob; reading is not activity: the list order stays.
    expect((await acme.messages.getById(own?._id as ObjectId)).read_by ?? []).toEqual([]);
    expect((await acme.conversations.getById(conversation._id)).updated_at).toEqual(before.updated_at);
    expect(await acme.conversations.readPosition(conversation._id, carol)).toBeNull();

    // Again: nothing moves, no receipt twice.
    expect(await acme.messages.markConversationRead(conversation._id, bob)).toEqual({ advanced: false, messageId: own?._id, receipts: 0 });
  });

  it('moves only the reader’s own position, wherever it is in the group, also in parallel', async () => {
    const [owner, ...members] = ids(8) as [ObjectId, ...ObjectId[]];
    const conversation = await group(owner, members);
    const [first, second] = await send(conversation._id, owner, 2);
    // Later members first: an update must not land on an earlier participant without a position.
    const readers = [...members].reverse().slice(0, 4);
    await Promise.all(readers.map((reader) => acme.messages.markConversationRead(conversation._id, reader, first?._id)));
    await acme.messages.markConversationRead(conversation._id, members[6] as ObjectId, second?._id);
    for (const member of members) {
      const position = await acme.conversations.readPosition(conversation._id, member);
      const expected = member.equals(members[6] as ObjectId)
        ? second?._id
        : readers.some((reader) => reader.equals(member))
          ? first?._id
          : undefined;
      expect(position?.messageId, String(member)).toEqual(expected);
    }
  });

  it('marks up to a given message only, and never moves the position backwards', async () => {
    const [alice, bob] = ids(2) as [ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    const sent = await send(conversation._id, alice, 4);
    const [first, second, , fourth] = sent as [(typeof sent)[0], (typeof sent)[0], (typeof sent)[0], (typeof sent)[0]];

    expect(await acme.messages.markConversationRead(conversation._id, bob, second._id)).toMatchObject({ advanced: true, receipts: 2 });
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(2);
    expect((await acme.messages.getById(fourth._id)).status).toBe('sent');
    expect(await acme.messages.markConversationRead(conversation._id, bob, first._id.toHexString())).toEqual({
      advanced: false,
      messageId: second._id,
      receipts: 0,
    });
    expect((await acme.conversations.readPosition(conversation._id, bob))?.messageId).toEqual(second._id);
  });

  it('ends at the newest position under 40 parallel calls in any order', async () => {
    const [alice, bob] = ids(2) as [ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    const sent = await send(conversation._id, alice, 20);
    const targets = [...sent, ...sent].map((message) => message._id).sort(() => Math.random() - 0.5);
    const marks = await Promise.all(targets.map((upTo) => acme.messages.markConversationRead(conversation._id, bob, upTo)));
    const newest = sent.at(-1)?._id as ObjectId;
    expect((await acme.conversations.readPosition(conversation._id, bob))?.messageId).toEqual(newest);
    // Each message got Bob's receipt exactly once, whichever calls covered it.
    expect(marks.reduce((total, mark) => total + mark.receipts, 0)).toBe(20);
    for (const message of sent) expect((await acme.messages.getById(message._id)).read_by).toHaveLength(1);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(0);
  });

  it('keeps only the position in a group larger than the receipt threshold', async () => {
    const [owner, reader, ...others] = ids(DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO + 1) as ObjectId[];
    const conversation = await group(owner as ObjectId, [reader as ObjectId, ...others]);
    const sent = await send(conversation._id, owner as ObjectId, 3);
    expect(await acme.messages.unreadCount(conversation._id, reader as ObjectId)).toBe(3);
    const mark = await acme.messages.markConversationRead(conversation._id, reader as ObjectId);
    expect(mark).toEqual({ advanced: true, messageId: sent.at(-1)?._id, receipts: 0 });
    for (const message of sent) {
      const stored = await acme.messages.getById(message._id);
      expect(stored.read_by ?? []).toEqual([]);
      expect(stored.status).toBe('sent');
    }
    expect(await acme.messages.unreadCount(conversation._id, reader as ObjectId)).toBe(0);
  });

  it('marks an empty conversation as nothing to read', async () => {
    const [alice, bob] = ids(2) as [ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    expect(await acme.messages.markConversationRead(conversation._id, bob)).toEqual({ advanced: false, messageId: null, receipts: 0 });
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(0);
  });

  it('refuses invalid input, a non-participant, a message of another conversation and another tenant, writing nothing', async () => {
    const [alice, bob, mallory] = ids(3) as [ObjectId, ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    const { conversation: elsewhere } = await acme.conversations.createDirect([alice, mallory]);
    const [message] = await send(conversation._id, alice, 1);
    const [foreign] = await send(elsewhere._id, alice, 1);
    // One snapshot around all refusals: each must fail with its type, and together they write nothing.
    const before = await snapshotDatabase(data.client);
    const refusals: Array<[() => Promise<unknown>, abstract new (...args: never[]) => Error]> = [
      [() => acme.messages.markConversationRead('nope', bob), ValidationError],
      [() => acme.messages.markConversationRead(conversation._id, 42 as never), ValidationError],
      [() => acme.messages.markConversationRead(conversation._id, bob, 'zz'), ValidationError],
      [() => acme.messages.unreadCount(conversation._id, bob, { max: 0 }), ValidationError],
      [() => acme.messages.unreadCount(conversation._id, bob, { max: 1, extra: true } as never), ValidationError],
      [() => acme.messages.markConversationRead(conversation._id, mallory), NotFoundError],
      [() => acme.messages.markConversationRead(conversation._id, bob, foreign?._id), NotFoundError],
      [() => acme.messages.markConversationRead(conversation._id, bob, new ObjectId()), NotFoundError],
      [() => acme.messages.unreadCount(conversation._id, mallory), NotFoundError],
      [() => globex.messages.markConversationRead(conversation._id, bob, message?._id), NotFoundError],
      [() => globex.messages.unreadCount(conversation._id, bob), NotFoundError],
      [() => data.messages.markConversationRead(conversation._id, bob), TenantContextError],
      [() => data.messages.unreadCount(conversation._id, bob), TenantContextError],
    ];
    for (const [action, type] of refusals) await expect(action()).rejects.toBeInstanceOf(type);
    expect(await snapshotDatabase(data.client)).toEqual(before);
    expect(await acme.conversations.readPosition(conversation._id, bob)).toBeNull();
  });
});

describe('messages.unreadCount', () => {
  it('counts others’ live messages after the position, up to max', async () => {
    const [alice, bob] = ids(2) as [ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    const sent = await send(conversation._id, alice, 6);
    await send(conversation._id, bob, 2);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(6);
    expect(await acme.messages.unreadCount(conversation._id, bob, { max: 4 })).toBe(4);
    expect(await acme.messages.unreadCount(conversation._id, alice)).toBe(2);
    await acme.messages.softDelete(sent[5]?._id as ObjectId);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(5);
    await acme.messages.markConversationRead(conversation._id, bob, sent[2]?._id);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(2);
    await send(conversation._id, alice, 1);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(3);
  });

  it('answers parallel counts while positions move', async () => {
    const [alice, bob] = ids(2) as [ObjectId, ObjectId];
    const { conversation } = await acme.conversations.createDirect([alice, bob]);
    const sent = await send(conversation._id, alice, 10);
    const counts = await Promise.all(
      sent.flatMap((message) => [
        acme.messages.markConversationRead(conversation._id, bob, message._id).then(() => -1),
        acme.messages.unreadCount(conversation._id, bob),
      ]),
    );
    for (const count of counts.filter((value) => value >= 0)) expect(count).toBeLessThanOrEqual(10);
    expect(await acme.messages.unreadCount(conversation._id, bob)).toBe(0);
  });
});
