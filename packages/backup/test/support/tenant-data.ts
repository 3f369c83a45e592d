import { canonicalLine } from '@caas-db/archive';
import { type DataClient, type DataLayer, type Document, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';

/** Every tenant-owned collection of the data model a backup covers. */
export const MODEL_COLLECTIONS = ['aggregations', 'conversations', 'events', 'files', 'groups', 'messages', 'metrics', 'settings', 'users'];

const text = (encrypted: string) => ({ type: 'text' as const, encrypted_data: encrypted });

const file = (key: string, uploader: ObjectId, conversation?: ObjectId) => ({
  uploader_id: uploader,
  storage: { provider: 's3' as const, bucket: 'caas-files', key, cdn_url: `https://cdn.example.com/${key}` },
  metadata: { filename: `${key}.png`, mime_type: 'image/png', size: 1024, checksum: 'sha256:abcdef0123456789' },
  encryption: { algorithm: 'AES-256-GCM' as const, encrypted_key: 'a2V5' },
  ...(conversation && { sharing: { type: 'chat' as const, conversation_id: conversation } }),
});

/** What {@link populateTenant} created. */
export interface Population {
  users: ObjectId[];
  conversations: ObjectId[];
}

/**
 * Fills every collection of a tenant through its repositories: users, a direct and a group
 * conversation with messages, replies, reactions, read receipts, an edit and a soft delete,
 * a group, files (one shared in a conversation), settings, events, metrics and aggregations.
 */
export async function populateTenant(data: DataLayer, tenant: string, messagesPerConversation = 6): Promise<Population> {
  const repositories = data.forTenant(tenant);
  const users: ObjectId[] = [];
  for (const name of ['alice', 'bob', 'carol', 'dave'])
    users.push((await repositories.users.create({ external_id: `${name}-${tenant}`, profile: { display_name: name } }))._id);
  const [alice, bob, carol, dave] = users as [ObjectId, ObjectId, ObjectId, ObjectId];
  const direct = (await repositories.conversations.createDirect([alice, bob])).conversation;
  const group = await repositories.conversations.createGroup({ type: 'group', ownerId: alice, memberIds: [bob, carol, dave] });
  for (const conversation of [direct, group]) {
    const sent = [];
    for (let index = 0; index < messagesPerConversation; index += 1)
      sent.push(
        await repositories.messages.create({
          conversation_id: conversation._id,
          sender_id: index % 2 ? bob : alice,
          content: text(`m${index}-${tenant}`),
        }),
      );
    const [first, second, third] = sent as unknown as [Document, Document, Document];
    await repositories.messages.create({
      conversation_id: conversation._id,
      sender_id: bob,
      content: text('reply'),
      thread: { parent_id: first._id },
    });
    await repositories.messages.addReaction(first._id, bob, '👍');
    await repositories.messages.addReaction(first._id, alice, '🎉');
    await repositories.messages.markAsRead(second._id, bob);
    await repositories.messages.edit(third._id, third.sender_id, { encrypted_data: 'edited' });
    await repositories.messages.softDelete(second._id);
  }
  const team = await repositories.groups.create({ name: `Team ${tenant}`, owner_id: alice });
  await repositories.groups.addMember(team._id, carol);
  await repositories.files.create(file(`${tenant}-avatar`, alice));
  await repositories.files.create(file(`${tenant}-shared`, bob, group._id));
  await repositories.settings.set('theme', 'dark', alice);
  await repositories.settings.set('retention_days', 30);
  await repositories.events.create({ type: 'message.sent', occurred_at: new Date(), user_id: alice, conversation_id: direct._id });
  await repositories.metrics.record('latency_ms', 12.5, { tags: { region: 'eu' } });
  await repositories.aggregations.increment('daily', '2026-11-30', 'all', { messages: 3 });
  return { users, conversations: [direct._id, group._id] };
}

/**
 * A tenant's documents of every collection, as canonical Extended JSON lines in `_id` order, read
 * with the driver for comparison (exact BSON types, nothing hidden).
 */
export async function snapshotTenant(
  client: DataClient,
  tenant: string,
  options: { database?: string; collections?: string[]; rewriteTo?: string } = {},
): Promise<Record<string, string[]>> {
  const db = unsafeDatabase(client, options.database);
  const snapshot: Record<string, string[]> = {};
  for (const collection of options.collections ?? MODEL_COLLECTIONS) {
    const documents = await db
      .collection(collection)
      .find({ tenant_id: tenant }, { sort: { _id: 1 }, promoteValues: false, promoteLongs: false })
      .toArray();
    snapshot[collection] = documents.map((document) =>
      options.rewriteTo ? canonicalLine({ ...document, tenant_id: options.rewriteTo }) : canonicalLine(document),
    );
  }
  return snapshot;
}

/** A fresh ObjectId-based suffix for database names. */
export function uniqueSuffix(): string {
  return new ObjectId().toHexString().slice(-8);
}
