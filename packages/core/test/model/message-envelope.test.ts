import { createTestDataLayer, snapshotDatabase } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Conversation, messageSchema, ObjectId } from '../../src/index.js';
import { compactDocument, MESSAGE_EMPTY_DEFAULTS, withEmptyDefaults } from '../../src/model/message-envelope.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const [alice, bob] = [new ObjectId(), new ObjectId()];
let conversation: Conversation;

const text = (encrypted: string) => ({ type: 'text' as const, encrypted_data: encrypted });

/** The message as stored, read over a connection of its own (whichever database tenancy routes it to). */
async function stored(id: ObjectId) {
  const snapshot = await snapshotDatabase(data.client);
  for (const [name, documents] of Object.entries(snapshot)) {
    if (!name.endsWith('.messages')) continue;
    const found = documents.find((document) => String(document._id) === String(id));
    if (found) return found;
  }
  throw new Error(`message ${String(id)} is not stored`);
}

beforeAll(async () => {
  conversation = (await acme.conversations.createDirect([alice, bob])).conversation;
});

describe('the compact message envelope', () => {
  it('stores no empty reactions, read_by or deleted_at, and every read returns them empty', async () => {
    const message = await acme.messages.create({ conversation_id: conversation._id, sender_id: alice, content: text('Y2lwaGVy') });
    expect(message).toMatchObject({ reactions: [], read_by: [], deleted_at: null, status: 'sent' });
    const raw = await stored(message._id);
    expect(Object.keys(raw)).not.toContain('reactions');
    expect(Object.keys(raw)).not.toContain('read_by');
    expect(Object.keys(raw)).not.toContain('deleted_at');
    expect(await acme.messages.getById(message._id)).toMatchObject({ reactions: [], read_by: [], deleted_at: null });
    const page = await acme.messages.findByConversation(conversation._id, { limit: 5 });
    expect(page.items.find((item) => item._id.equals(message._id))).toMatchObject({ reactions: [], read_by: [], deleted_at: null });
    // A projection returns what it names and nothing it does not.
    expect(await acme.messages.getById(message._id, { projection: { status: 1 } })).toEqual({ _id: message._id, status: 'sent' });
  });

  it('reads documents stored with the empty values exactly as before', async () => {
    const [old] = await acme.messages.createMany([{ conversation_id: conversation._id, sender_id: bob, content: text('b2xk') }]);
    const id = old?._id as ObjectId;
    expect(Object.keys(await stored(id))).not.toContain('read_by');
    const full = withEmptyDefaults({ ...(await stored(id)) }, MESSAGE_EMPTY_DEFAULTS);
    expect(full).toMatchObject({ reactions: [], read_by: [], deleted_at: null });
    expect(compactDocument(full, MESSAGE_EMPTY_DEFAULTS)).toEqual(await stored(id));
  });

  it('keeps receipts, reactions, soft delete and restore working on compact documents, also concurrently', async () => {
    const message = await acme.messages.create({ conversation_id: conversation._id, sender_id: alice, content: text('cmVjZWlwdA') });
    expect(await acme.messages.removeReaction(message._id, bob, '👍')).toBe(false);
    const readers = Array.from({ length: 10 }, () => new ObjectId());
    await Promise.all([
      ...readers.map((reader) => acme.messages.markAsRead(message._id, reader)),
      ...readers.map((reader) => acme.messages.addReaction(message._id, reader, '👍')),
    ]);
    const after = await acme.messages.getById(message._id);
    expect(after.read_by).toHaveLength(10);
    expect(after.reactions).toHaveLength(10);
    expect(after.status).toBe('read');
    expect(await acme.messages.softDelete(message._id)).toBe(true);
    expect(await acme.messages.findById(message._id)).toBeNull();
    expect(await acme.messages.restore(message._id)).toBe(true);
    expect(await acme.messages.getById(message._id)).toMatchObject({ deleted_at: null, status: 'read' });
  });

  it('returns the stored message for a re-send with the same _id', async () => {
    const _id = new ObjectId();
    const input = { _id, conversation_id: conversation._id, sender_id: alice, content: text('cmVzZW5k') };
    const [first, second] = await Promise.all([acme.messages.create(input), acme.messages.create(input)]);
    expect(first?._id).toEqual(_id);
    expect(second).toMatchObject({ _id, read_by: [], reactions: [], deleted_at: null });
  });
});

describe('compactDocument / withEmptyDefaults', () => {
  it('restores exactly what the schema defaults a missing field to', () => {
    expect(messageSchema.shape.reactions.parse(undefined)).toEqual(MESSAGE_EMPTY_DEFAULTS.reactions?.());
    expect(messageSchema.shape.read_by.parse(undefined)).toEqual(MESSAGE_EMPTY_DEFAULTS.read_by?.());
  });

  it('leaves documents without empty values untouched and copies frozen ones', () => {
    const full = { _id: 1, read_by: [{ user_id: 1 }], reactions: [], deleted_at: new Date(0) };
    expect(compactDocument(full, MESSAGE_EMPTY_DEFAULTS)).toEqual({ _id: 1, read_by: [{ user_id: 1 }], deleted_at: new Date(0) });
    const plain = { _id: 2, read_by: [{ user_id: 1 }] };
    expect(compactDocument(plain, MESSAGE_EMPTY_DEFAULTS)).toBe(plain);
    const frozen = Object.freeze({ _id: 3 });
    const filled = withEmptyDefaults(frozen, MESSAGE_EMPTY_DEFAULTS);
    expect(filled).not.toBe(frozen);
    expect(filled).toEqual({ _id: 3, reactions: [], read_by: [], deleted_at: null });
    expect(withEmptyDefaults({ _id: 4 }, MESSAGE_EMPTY_DEFAULTS, { content: 0 })).toEqual({
      _id: 4,
      reactions: [],
      read_by: [],
      deleted_at: null,
    });
    expect(withEmptyDefaults({ _id: 5 }, MESSAGE_EMPTY_DEFAULTS, { read_by: 1 })).toEqual({ _id: 5, read_by: [] });
  });
});
