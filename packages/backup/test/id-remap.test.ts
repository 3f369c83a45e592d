import { ObjectId } from '@caas-db/core';
import { describe, expect, it } from 'vitest';
import { createIdRemap } from '../src/index.js';

describe('createIdRemap', () => {
  it('is deterministic, keeps creation second and per-process order, and differs per target tenant', () => {
    const remap = createIdRemap('acme', 'acme-twin');
    const ids = Array.from({ length: 50 }, () => new ObjectId());
    const mapped = ids.map((id) => remap.map(id));
    expect(mapped.map(String)).toEqual(ids.map((id) => String(createIdRemap('acme', 'acme-twin').map(id))));
    for (const [index, id] of ids.entries()) {
      expect(mapped[index]?.getTimestamp()).toEqual(id.getTimestamp());
      expect(String(mapped[index])).not.toBe(String(id));
    }
    // One process's ids: same order after the mapping.
    expect(mapped.map(String)).toEqual(mapped.map(String).sort());
    expect(String(createIdRemap('acme', 'other').map(ids[0]))).not.toBe(String(mapped[0]));
    expect(new Set(mapped.map(String)).size).toBe(ids.length);
    expect(remap.map('not-an-object-id')).toBe('not-an-object-id');
  });

  it('maps references at any depth and the ids the model embeds in strings', () => {
    const remap = createIdRemap('acme', 'acme-twin');
    const [a, b] = [new ObjectId(), new ObjectId()];
    const sorted = [a, b].map(String).sort();
    const conversation = remap.document(
      { _id: a, dedupe_key: `direct:${sorted[0]}:${sorted[1]}`, participants: [{ user_id: a }, { user_id: b }] },
      'conversations',
    );
    const [ma, mb] = [remap.map(a), remap.map(b)];
    expect(conversation.participants).toEqual([{ user_id: ma }, { user_id: mb }]);
    expect(conversation.dedupe_key).toBe(`direct:${[String(ma), String(mb)].sort().join(':')}`);
    expect(remap.document({ owner_key: `user:${a}` }, 'settings').owner_key).toBe(`user:${ma}`);
    expect(remap.document({ thread: { applied: [`+${a}`, `-${b}@17`] } }, 'messages').thread.applied).toEqual([`+${ma}`, `-${mb}@17`]);
    expect(remap.document({ content: { encrypted_data: String(a) } }, 'messages').content.encrypted_data).toBe(String(a));
  });
  it('maps the recipient ids that name the keys of a message (content.encrypted_key)', () => {
    const remap = createIdRemap('acme', 'acme-twin');
    const [ann, ben] = [new ObjectId(), new ObjectId()];
    const message = remap.document(
      {
        sender_id: ann,
        content: { type: 'text', encrypted_data: 'x', encrypted_key: { [ann.toHexString()]: 'wa', [ben.toHexString()]: 'wb' } },
      },
      'messages',
    );
    expect(message.content.encrypted_key).toEqual({ [remap.map(ann).toHexString()]: 'wa', [remap.map(ben).toHexString()]: 'wb' });
    expect(message.sender_id).toEqual(remap.map(ann));
  });
});
