/**
 * The reference check of messages (on by default): `create` and `createMany` refuse a conversation
 * that does not exist and a sender who is not a participant, writing nothing; `integrity:
 * { messages: false }` turns it off.
 */
import { createTestDataLayer } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { InvariantError, ObjectId, ReferentialIntegrityError } from '../../src/index.js';

const data = createTestDataLayer();
const tenant = `refs-${Date.now()}`;
const repositories = data.forTenant(tenant);
const text = (cipher: string) => ({ type: 'text' as const, encrypted_data: cipher });
// Through the repository, so the count is right under either tenancy strategy of the project.
const stored = () => repositories.messages.count();

describe('messages reference check (default)', () => {
  it('create and createMany refuse a missing conversation and a non-participant, under concurrency, writing nothing', async () => {
    const [ann, ben, cat] = [new ObjectId(), new ObjectId(), new ObjectId()];
    const { conversation } = await repositories.conversations.createDirect([ann, ben]);
    const before = await stored();
    const outcomes = await Promise.allSettled([
      repositories.messages.create({ conversation_id: new ObjectId(), sender_id: ann, content: text('eA') }),
      repositories.messages.create({ conversation_id: conversation._id, sender_id: cat, content: text('eA') }),
      repositories.messages.createMany([
        { conversation_id: conversation._id, sender_id: ann, content: text('b2s') },
        { conversation_id: new ObjectId(), sender_id: ann, content: text('bm8') },
      ]),
      repositories.messages.createMany([
        { conversation_id: conversation._id, sender_id: ben, content: text('b2s') },
        { conversation_id: conversation._id, sender_id: cat, content: text('bm8') },
      ]),
    ]);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(ReferentialIntegrityError);
    }
    expect(await stored()).toBe(before);

    const sent = await Promise.all([
      repositories.messages.create({ conversation_id: conversation._id, sender_id: ann, content: text('aGk') }),
      repositories.messages.createMany([
        { conversation_id: conversation._id, sender_id: ann, content: text('b2s') },
        { conversation_id: conversation._id, sender_id: ben, content: text('b2s') },
      ]),
    ]);
    expect(sent.flat()).toHaveLength(3);
    expect(await stored()).toBe(before + 3);
  });

  it('bulkWrite inserts are checked too: a refused item writes nothing of the batch', async () => {
    const [ann, ben] = [new ObjectId(), new ObjectId()];
    const { conversation } = await repositories.conversations.createDirect([ann, ben]);
    const before = await stored();
    await expect(
      repositories.messages.bulkWrite([
        { insert: { conversation_id: conversation._id, sender_id: ann, content: text('b2s') } },
        { insert: { conversation_id: new ObjectId(), sender_id: ann, content: text('bm8') } },
      ]),
    ).rejects.toBeInstanceOf(ReferentialIntegrityError);
    expect(await stored()).toBe(before);
    const summary = await repositories.messages.bulkWrite([
      { insert: { conversation_id: conversation._id, sender_id: ben, content: text('b2s') } },
    ]);
    expect(summary).toMatchObject({ inserted: 1 });
    expect(await stored()).toBe(before + 1);
  });

  it('a message keeps its conversation: updates that move it are refused, writing nothing', async () => {
    const [ann, ben] = [new ObjectId(), new ObjectId()];
    const { conversation } = await repositories.conversations.createDirect([ann, ben]);
    const message = await repositories.messages.create({ conversation_id: conversation._id, sender_id: ann, content: text('aGk') });
    const moves = [
      () => repositories.messages.update(message._id, { conversation_id: new ObjectId() } as never),
      () => repositories.messages.updateWith(message._id, { $set: { conversation_id: new ObjectId() } }),
      () => repositories.messages.bulkWrite([{ updateWith: { id: message._id, update: { $set: { conversation_id: new ObjectId() } } } }]),
    ];
    const outcomes = await Promise.allSettled(moves.map((move) => move()));
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(InvariantError);
    }
    expect(await repositories.messages.getById(message._id)).toMatchObject({ conversation_id: conversation._id, sender_id: ann });
  });

  it('checks what createMany sends, not what a getter answered first', async () => {
    const [ann, ben] = [new ObjectId(), new ObjectId()];
    const { conversation } = await repositories.conversations.createDirect([ann, ben]);
    const ghost = new ObjectId();
    let reads = 0;
    const input = {
      get conversation_id() {
        reads += 1;
        return reads === 1 ? conversation._id : ghost;
      },
      sender_id: ann,
      content: text('eA'),
    };
    const before = await stored();
    await expect(repositories.messages.createMany([input as never])).rejects.toBeInstanceOf(ReferentialIntegrityError);
    expect(await stored()).toBe(before);
  });

  it('is off with integrity: { messages: false }', async () => {
    const unchecked = createTestDataLayer({ client: data.client, integrity: { messages: false } }).forTenant(tenant);
    const before = await stored();
    await unchecked.messages.create({ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: text('eA') });
    await unchecked.messages.createMany([{ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: text('eA') }]);
    expect(await stored()).toBe(before + 2);
  });
});
