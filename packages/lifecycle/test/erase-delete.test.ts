import { BSON, type Document, type ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { describe, expect, it } from 'vitest';
import { setupLifecycle, strategies } from './support.js';

const operator = { type: 'operator' as const, id: 'dpo' };
const text = (document: unknown) => BSON.EJSON.stringify(document, { relaxed: false });

describe.each(strategies)('erasure of a user whose messages are deleted, not tombstoned (%s strategy)', (strategy) => {
  const tenant = `erase-delete-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant]);
  const { data, lifecycle } = setup;
  const repositories = () => data.forTenant(tenant);

  /** Every document of every collection of the tenant, read directly. */
  async function everything(): Promise<Record<string, Document[]>> {
    const database = unsafeDatabase(setup.client, await setup.databaseOf(tenant));
    const result: Record<string, Document[]> = {};
    for (const { name } of await database.listCollections({}, { nameOnly: true }).toArray())
      result[name] = await database.collection(name).find({ tenant_id: tenant }).toArray();
    result['audit_logs (platform)'] = await unsafeDatabase(setup.client).collection('audit_logs').find({ tenant_id: tenant }).toArray();
    return result;
  }

  it('removes her messages, traces, memberships and profile; every denormalized field is repaired (0 drift), deleted conversations too', async () => {
    const [dana, erin, finn] = await repositories().users.createMany(
      ['dana', 'erin', 'finn'].map((name) => ({ external_id: `ext-${name}`, profile: { display_name: `${name} Lastname` } })),
    );
    if (!dana || !erin || !finn) throw new Error('users not created');
    const ciphertexts: string[] = [];
    const send = async (conversation: ObjectId, sender: ObjectId, extra: Document = {}) => {
      const body = Buffer.from(`${String(sender)}-${ciphertexts.length}`).toString('base64url');
      if (sender === dana._id) ciphertexts.push(body);
      return repositories().messages.create({
        conversation_id: conversation,
        sender_id: sender,
        content: { type: 'text', encrypted_data: body, encrypted_preview: `${body}p`, encrypted_key: { [String(dana._id)]: `${body}k` } },
        ...extra,
      });
    };
    const direct = (await repositories().conversations.createDirect([dana._id, erin._id])).conversation;
    const group = await repositories().conversations.createGroup({ type: 'group', ownerId: erin._id, memberIds: [dana._id, finn._id] });
    const gone = await repositories().conversations.createGroup({ type: 'group', ownerId: erin._id, memberIds: [dana._id] });
    const parent = await send(group._id, erin._id);
    await send(group._id, dana._id, { thread: { parent_id: parent._id } });
    await send(group._id, finn._id, { thread: { parent_id: parent._id } });
    await send(direct._id, erin._id);
    await send(direct._id, dana._id);
    await send(gone._id, erin._id);
    await send(gone._id, dana._id);
    await repositories().messages.addReaction(parent._id, dana._id, '👍');
    await repositories().messages.markAsRead(parent._id, dana._id);
    await repositories().groups.create({ name: 'Dana club', owner_id: dana._id, member_ids: [erin._id] });
    await repositories().settings.set('theme', 'dark', dana._id);
    await repositories().events.create({ type: 'user.active', user_id: dana._id, occurred_at: new Date() });
    // A conversation deleted while its last message was hers: its last_message still names her.
    await repositories().conversations.softDelete(gone._id);
    expect((await repositories().conversations.getById(direct._id)).last_message?.sender_id).toEqual(dana._id);
    expect((await repositories().messages.getById(parent._id)).thread?.reply_count).toBe(2);

    const report = await lifecycle.eraseUser(tenant, dana._id, { actor: operator, messages: 'delete' });
    expect(report.counts.messagesRemoved).toBe(3);
    expect(report.counts.messagesTombstoned).toBeUndefined();

    const all = await everything();
    const serialized = text(all);
    for (const needle of [String(dana._id), 'ext-dana', 'dana Lastname', ...ciphertexts]) expect(serialized, needle).not.toContain(needle);
    // Her messages are gone, not pseudonymised; nobody else's are.
    expect(all.messages).toHaveLength(4);
    expect((all.messages ?? []).some((message) => String(message.sender_id) === report.erasureId)).toBe(false);

    // Verify/repair checks: 0 drift. last_message of the direct conversation moved to erin's message.
    expect((await repositories().conversations.getById(direct._id)).last_message?.sender_id).toEqual(erin._id);
    for (const conversation of all.conversations ?? [])
      if (!conversation.deleted_at) expect((await repositories().messages.verifyLastMessage(conversation._id)).consistent).toBe(true);
    expect(await repositories().messages.recountReplies(parent._id)).toEqual({ stored: 1, actual: 1 });
    const deleted = (all.conversations ?? []).find((conversation) => String(conversation._id) === String(gone._id));
    expect(deleted?.deleted_at).toBeInstanceOf(Date);
    expect(await repositories().messages.verifyLastMessage(gone._id, { includeDeleted: true })).toEqual({
      consistent: true,
      messageId: null,
    });
    await expect(repositories().messages.verifyLastMessage(gone._id, { includeDeleted: 'yes' as never })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
    expect(await lifecycle.orphans(tenant)).toEqual({
      messagesWithoutConversation: 0,
      messagesWithoutSender: 0,
      missingUsersReferenced: 0,
      filesWithoutUploader: 0,
      sharesWithoutConversation: 0,
      repaired: false,
    });
    const entry = (all['audit_logs (platform)'] ?? []).find((document) => document.action === 'user.erase');
    expect(entry?.target).toEqual({ collection: 'users', id: report.erasureId });
    expect((entry?.details as Document | undefined)?.counts?.messagesRemoved).toBe(3);

    // Idempotent.
    const again = await lifecycle.eraseUser(tenant, dana._id, { actor: operator, messages: 'delete' });
    expect(Object.values(again.counts).every((count) => count === 0)).toBe(true);
    await expect(lifecycle.eraseUser(tenant, dana._id, { actor: operator, messages: 'drop' as never })).rejects.toMatchObject({
      code: 'E_VALIDATION',
    });
  });
});
