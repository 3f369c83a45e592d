import { BSON, DatabaseError, type Document, type Middleware, type ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { describe, expect, it } from 'vitest';
import { setupLifecycle, strategies } from './support.js';

const operator = { type: 'operator' as const, id: 'dpo' };

/** Fails the first erase step that removes uploads once, like a crash mid-erasure. */
let failUploadsOnce = false;
const faultOnce: Middleware = {
  name: 'fault-once',
  phase: 'transport',
  async handle(ctx, next) {
    if (failUploadsOnce && ctx.operation.includes('lifecycle.erase (uploads)')) {
      failUploadsOnce = false;
      throw new DatabaseError('injected failure mid-erasure');
    }
    return next();
  },
};

const text = (document: unknown) => BSON.EJSON.stringify(document, { relaxed: false });

describe.each(strategies)('export and erase of a user (%s strategy)', (strategy) => {
  const tenant = `gdpr-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant], {}, [faultOnce]);
  const { data, lifecycle } = setup;
  const repositories = () => data.forTenant(tenant);
  const people: Record<string, ObjectId> = {};
  const ciphertexts = { alice: [] as string[], others: [] as string[] };

  /** Every document of every collection of the tenant, read directly. */
  async function everything(): Promise<Record<string, Document[]>> {
    const database = unsafeDatabase(setup.client, await setup.databaseOf(tenant));
    const result: Record<string, Document[]> = {};
    for (const { name } of await database.listCollections({}, { nameOnly: true }).toArray()) {
      result[name] = await database.collection(name).find({ tenant_id: tenant }).toArray();
    }
    const platform = unsafeDatabase(setup.client);
    result['audit_logs (platform)'] = await platform.collection('audit_logs').find({ tenant_id: tenant }).toArray();
    return result;
  }

  it('builds a tenant where alice talks, reacts, reads, uploads, belongs and is remembered', async () => {
    const created = await repositories().users.createMany(
      ['alice', 'bob', 'carol'].map((name) => ({ external_id: `ext-${name}`, profile: { display_name: `${name} Surname${name.length}` } })),
    );
    for (const user of created) people[user.external_id.slice(4)] = user._id;
    const { alice, bob, carol } = people as { alice: ObjectId; bob: ObjectId; carol: ObjectId };
    await repositories().settings.set('theme', 'dark', alice);
    await repositories().settings.set('theme', 'light', bob);
    await repositories().users.addRelationship(bob, alice, 'friend');
    await repositories().users.addRelationship(bob, carol, 'friend');
    const direct = (await repositories().conversations.createDirect([alice, bob])).conversation;
    const group = await repositories().conversations.createGroup({
      type: 'group',
      ownerId: bob,
      memberIds: [alice, carol],
      metadata: { name: 'Trip' },
    });
    const without = await repositories().conversations.createGroup({ type: 'group', ownerId: bob, memberIds: [carol] });
    const send = async (conversation: ObjectId, sender: ObjectId, who: 'alice' | 'others', extra: Document = {}) => {
      const body = Buffer.from(`${who}-${ciphertexts[who].length}-${String(sender)}`).toString('base64url');
      ciphertexts[who].push(body);
      return repositories().messages.create({
        conversation_id: conversation,
        sender_id: sender,
        content: {
          type: 'text',
          encrypted_data: body,
          encrypted_preview: `${body}p`,
          encrypted_key: { [String(alice)]: `${body}ka`, [String(bob)]: `${body}kb` },
        },
        ...extra,
      });
    };
    const fromBob = await send(group._id, bob, 'others');
    await send(group._id, alice, 'alice', { thread: { parent_id: fromBob._id } });
    await send(direct._id, bob, 'others');
    const last = await send(direct._id, alice, 'alice');
    await send(without._id, carol, 'others');
    await repositories().messages.addReaction(fromBob._id, alice, '👍');
    await repositories().messages.addReaction(last._id, bob, '❤');
    await repositories().messages.markAsRead(fromBob._id, alice);
    await repositories().messages.markAsRead(last._id, bob);
    await repositories().files.create({
      uploader_id: alice,
      storage: { provider: 's3', bucket: 'b', key: 'alice/1' },
      metadata: { filename: 'alice-passport.png', mime_type: 'image/png', size: 1, checksum: 'sha256:abcdefgh' },
      sharing: { type: 'chat', conversation_id: group._id },
    });
    await repositories().files.create({
      uploader_id: bob,
      storage: { provider: 's3', bucket: 'b', key: 'bob/1' },
      metadata: { filename: 'bob-notes.txt', mime_type: 'text/plain', size: 1, checksum: 'sha256:abcdefgh' },
    });
    await repositories().groups.create({ name: 'Alice club', owner_id: alice, member_ids: [bob] });
    await repositories().groups.create({ name: 'Bob club', owner_id: bob, member_ids: [alice, carol] });
    await repositories().events.create({ type: 'user.active', user_id: alice, occurred_at: new Date() });
    await repositories().events.create({ type: 'user.active', user_id: bob, occurred_at: new Date() });
    expect((await repositories().conversations.getById(direct._id)).last_message?.sender_id).toEqual(alice);
  });

  it('exports every document about alice, checked against a direct query of every collection, and nothing about anyone else', async () => {
    const { alice, bob, carol } = people as { alice: ObjectId; bob: ObjectId; carol: ObjectId };
    const lines: string[] = [];
    const manifest = await lifecycle.exportUser(tenant, alice, (line) => lines.push(line));
    const records = lines.map((line) => BSON.EJSON.parse(line, { relaxed: false }) as { collection: string; document: Document });
    const exported = (collection: string, key = '_id') =>
      new Set(records.filter((record) => record.collection === collection).map((record) => String(record.document[key])));
    expect(manifest.counts).toEqual(
      Object.fromEntries(
        [...new Set(records.map((record) => record.collection))].map((name) => [
          name,
          records.filter((record) => record.collection === name).length,
        ]),
      ),
    );
    expect(manifest.sha256).toMatch(/^[0-9a-f]{64}$/);

    // Every document that names alice, found by a direct query of each collection, is in the export.
    const all = await everything();
    const id = String(alice);
    const about = (documents: Document[] | undefined, where: (document: Document) => boolean) =>
      (documents ?? []).filter(where).map((document) => String(document._id));
    const has = (values: unknown) => Array.isArray(values) && values.some((value) => String((value as Document)?.user_id ?? value) === id);
    expect([...exported('users')]).toEqual(about(all.users, (document) => String(document._id) === id));
    expect([...exported('settings')]).toEqual(about(all.settings, (document) => String(document.user_id) === id));
    expect([...exported('conversations.membership', 'conversation_id')].sort()).toEqual(
      about(all.conversations, (document) => has(document.participants)).sort(),
    );
    expect([...exported('messages')].sort()).toEqual(about(all.messages, (document) => String(document.sender_id) === id).sort());
    expect([...exported('messages.reactions', 'message_id')]).toEqual(about(all.messages, (document) => has(document.reactions)));
    expect([...exported('messages.read_by', 'message_id')]).toEqual(about(all.messages, (document) => has(document.read_by)));
    expect([...exported('files')]).toEqual(about(all.files, (document) => String(document.uploader_id) === id));
    expect([...exported('groups.membership', 'group_id')].sort()).toEqual(
      about(all.groups, (document) => String(document.owner_id) === id || has(document.member_ids)).sort(),
    );
    expect([...exported('events')]).toEqual(about(all.events, (document) => String(document.user_id) === id));
    // Where else alice's id appears, and why it is not hers to export: bob's friend list, the keys
    // bob wrapped for her on his messages, the direct conversation's key and its last_message (her
    // message, exported as such).
    for (const [collection, documents] of Object.entries(all))
      for (const document of documents) {
        if (!text(document).includes(id)) continue;
        const explained =
          exported(collection).has(String(document._id)) ||
          (collection === 'users' && has(document.relationships)) ||
          (collection === 'messages' &&
            (has(document.reactions) || has(document.read_by) || document.content?.encrypted_key?.[id] !== undefined)) ||
          (collection === 'conversations' && has(document.participants)) ||
          (collection === 'groups' && (has(document.member_ids) || String(document.owner_id) === id)) ||
          (collection === 'settings' && String(document.user_id) === id);
        expect(explained, `${collection} ${String(document._id)} names alice`).toBe(true);
      }

    // Nothing about anyone else: no other person's id, name, external id or ciphertext.
    const output = lines.join('');
    for (const other of [bob, carol]) expect(output).not.toContain(String(other));
    for (const needle of ['bob Surname3', 'carol Surname5', 'ext-bob', 'ext-carol', 'bob-notes', ...ciphertexts.others])
      expect(output).not.toContain(needle);
    for (const body of ciphertexts.alice) expect(output).toContain(body);
  });

  it('erases alice everywhere: no collection holds her id, name or content; denormalized fields consistent; idempotent', async () => {
    const { alice, bob } = people as { alice: ObjectId; bob: ObjectId };
    failUploadsOnce = true;
    await expect(lifecycle.eraseUser(tenant, alice, { actor: operator })).rejects.toBeInstanceOf(DatabaseError);
    const report = await lifecycle.eraseUser(tenant, alice, { actor: operator });
    expect(report.resumed).toBe(true);
    expect(report.counts.files).toBe(1);

    const all = await everything();
    const serialized = text(all);
    for (const needle of [String(alice), 'ext-alice', 'alice Surname5', 'alice-passport', ...ciphertexts.alice])
      expect(serialized).not.toContain(needle);
    // Her messages remain as pseudonymised tombstones (threads and receipts stay consistent).
    const tombstones = (all.messages ?? []).filter((message) => String(message.sender_id) === report.erasureId);
    expect(tombstones).toHaveLength(ciphertexts.alice.length);
    for (const tombstone of tombstones) {
      expect(tombstone.content).toEqual({ type: 'text' });
      expect(tombstone.status).toBe('deleted');
    }
    // The audit entry names the erasure, not the person.
    const entry = (all['audit_logs (platform)'] ?? []).find((document) => document.action === 'user.erase');
    expect(entry?.target).toEqual({ collection: 'users', id: report.erasureId });

    // Verify/repair checks: 0 drift.
    for (const conversation of all.conversations ?? []) {
      if (conversation.deleted_at) continue;
      expect((await repositories().messages.verifyLastMessage(conversation._id)).consistent).toBe(true);
    }
    for (const message of (all.messages ?? []).filter((document) => document.thread?.reply_count !== undefined && !document.deleted_at)) {
      const { stored, actual } = await repositories().messages.recountReplies(message._id);
      expect(stored).toBe(actual);
    }
    expect(await lifecycle.orphans(tenant)).toEqual({
      messagesWithoutConversation: 0,
      messagesWithoutSender: 0,
      missingUsersReferenced: 0,
      filesWithoutUploader: 0,
      sharesWithoutConversation: 0,
      repaired: false,
    });
    expect((await repositories().users.getById(bob)).relationships).toHaveLength(1);

    // Idempotent: a second request finds nothing left.
    const again = await lifecycle.eraseUser(tenant, alice, { actor: operator });
    expect(Object.values(again.counts).every((count) => count === 0)).toBe(true);
    await expect(lifecycle.eraseUser(tenant, 'not-an-id', { actor: operator })).rejects.toMatchObject({ code: 'E_VALIDATION' });
  });

  it('exports and erases the whole tenant', async () => {
    await repositories().metrics.recordMany([
      { name: 'messages.sent', value: 3 },
      { name: 'api.calls', value: 7, at: new Date('2020-01-01T00:00:00Z') },
      // The last date a JavaScript Date holds: "every metric" includes it.
      { name: 'api.calls', value: 9, at: new Date(8.64e15) },
    ]);
    const lines: string[] = [];
    const manifest = await lifecycle.exportTenant(tenant, (line) => lines.push(line));
    const all = await everything();
    for (const collection of ['users', 'conversations', 'messages', 'files', 'groups', 'settings', 'events'])
      expect(manifest.counts[collection] ?? 0, collection).toBe(all[collection]?.length ?? 0);
    const counts = await lifecycle.eraseTenant(tenant, operator);
    expect(counts.messages).toBe(all.messages?.length);
    expect(counts.metrics).toBe(3);
    const after = await everything();
    for (const [collection, documents] of Object.entries(after))
      if (!['audit_logs (platform)', 'audit_logs', 'caas_tenant_owner'].includes(collection)) expect(documents, collection).toEqual([]);
  });
});
