import { createHash } from 'node:crypto';
import { BSON, type Document, type ObjectId, objectIdSchema, parseInput, tenantIdSchema } from '@caas-db/core';
import type { LifecycleCollection, LifecycleContext } from './context.js';

/** The manifest closing an export: what it holds, and a hash to check it arrived whole. */
export interface ExportManifest {
  format: 'caas-db.export/1';
  /** Whose data: a user of a tenant, or a whole tenant. */
  subject: { tenant: string; user?: string };
  generatedAt: Date;
  /** Records per collection (`messages.reactions`, `messages.read_by` and `conversations.membership` are parts of documents). */
  counts: Record<string, number>;
  /** SHA-256 (hex) of every record line in order, each with its newline. */
  sha256: string;
}

/** Where an export's lines go, one NDJSON line (relaxed-free canonical EJSON) at a time. */
export type ExportSink = (line: string) => unknown;

class Writer {
  readonly #sink: ExportSink;
  readonly #hash = createHash('sha256');
  readonly counts: Record<string, number> = {};

  constructor(sink: ExportSink) {
    this.#sink = sink;
  }

  async record(collection: string, document: Document): Promise<void> {
    const line = `${BSON.EJSON.stringify({ collection, document }, { relaxed: false })}\n`;
    this.#hash.update(line);
    this.counts[collection] = (this.counts[collection] ?? 0) + 1;
    await this.#sink(line);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

/** Reads every document of `filter` in `_id` order, a page at a time. */
async function* keyset(
  context: LifecycleContext,
  tenant: string,
  collection: LifecycleCollection,
  operation: string,
  filter: Document,
  projection?: Document,
): AsyncGenerator<Document> {
  const access = context.access(tenant, collection);
  let after: ObjectId | undefined;
  for (;;) {
    const page = await access.rawFind(operation, after ? { ...filter, _id: { $gt: after } } : filter, {
      sort: { _id: 1 },
      limit: 500,
      ...(projection && { projection }),
    });
    for (const document of page) yield document;
    if (page.length < 500) return;
    after = page[page.length - 1]?._id as ObjectId;
  }
}

/**
 * Streams everything stored about one user as NDJSON EJSON records `{ collection, document }`, then
 * resolves with the manifest: the profile and its relationships, the user's settings, each
 * membership (the conversation's id, type and metadata with the user's own participant entry only),
 * the messages they sent (ciphertext with metadata; only their own wrapped key, no one else's
 * receipts or reactions), their reactions and read receipts on others' messages, their uploads'
 * metadata, the groups they own or belong to, and their analytics events. Deleted documents are
 * included: they are still stored.
 */
export async function exportUser(
  context: LifecycleContext,
  tenant: string,
  userId: string | ObjectId,
  sink: ExportSink,
): Promise<ExportManifest> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const user = parseInput(objectIdSchema, userId, 'userId');
  const hex = user.toHexString();
  const out = new Writer(sink);
  for await (const document of keyset(context, tenantId, 'users', 'lifecycle.export (user)', { tenant_id: tenantId, _id: user }))
    await out.record('users', document);
  for await (const document of keyset(context, tenantId, 'settings', 'lifecycle.export (settings)', {
    tenant_id: tenantId,
    owner_key: `user:${hex}`,
  }))
    await out.record('settings', document);
  for await (const conversation of keyset(context, tenantId, 'conversations', 'lifecycle.export (memberships)', {
    tenant_id: tenantId,
    'participants.user_id': user,
  })) {
    const participant = (conversation.participants as Document[]).find((entry) => String(entry.user_id) === hex);
    await out.record('conversations.membership', {
      conversation_id: conversation._id,
      type: conversation.type,
      metadata: conversation.metadata ?? {},
      participant,
      deleted_at: conversation.deleted_at ?? null,
    });
  }
  for await (const message of keyset(context, tenantId, 'messages', 'lifecycle.export (sent)', { tenant_id: tenantId, sender_id: user })) {
    const { reactions, read_by, content, ...rest } = message;
    const { encrypted_key, ...body } = (content ?? {}) as Document;
    const ownKey = (encrypted_key as Record<string, string> | undefined)?.[hex];
    await out.record('messages', {
      ...rest,
      content: { ...body, ...(ownKey !== undefined && { encrypted_key: { [hex]: ownKey } }) },
      reactions: ((reactions as Document[] | undefined) ?? []).filter((reaction) => String(reaction.user_id) === hex),
    });
  }
  const traces = { tenant_id: tenantId, $or: [{ 'reactions.user_id': user }, { 'read_by.user_id': user }] };
  for await (const message of keyset(context, tenantId, 'messages', 'lifecycle.export (traces)', traces, {
    conversation_id: 1,
    reactions: 1,
    read_by: 1,
  })) {
    for (const reaction of (message.reactions as Document[] | undefined) ?? [])
      if (String(reaction.user_id) === hex)
        await out.record('messages.reactions', {
          message_id: message._id,
          conversation_id: message.conversation_id,
          emoji: reaction.emoji,
          created_at: reaction.created_at,
        });
    for (const receipt of (message.read_by as Document[] | undefined) ?? [])
      if (String(receipt.user_id) === hex)
        await out.record('messages.read_by', {
          message_id: message._id,
          conversation_id: message.conversation_id,
          read_at: receipt.read_at,
        });
  }
  for await (const file of keyset(context, tenantId, 'files', 'lifecycle.export (uploads)', { tenant_id: tenantId, uploader_id: user }))
    await out.record('files', file);
  const groups = new Map<string, Document>();
  for await (const group of keyset(context, tenantId, 'groups', 'lifecycle.export (owned groups)', { tenant_id: tenantId, owner_id: user }))
    groups.set(String(group._id), group);
  for await (const group of keyset(context, tenantId, 'groups', 'lifecycle.export (groups)', { tenant_id: tenantId, member_ids: user }))
    groups.set(String(group._id), group);
  for (const group of groups.values()) {
    await out.record('groups.membership', {
      group_id: group._id,
      name: group.name,
      role: String(group.owner_id) === hex ? 'owner' : 'member',
      ...(group.conversation_id && { conversation_id: group.conversation_id }),
    });
  }
  for await (const event of keyset(context, tenantId, 'events', 'lifecycle.export (events)', { tenant_id: tenantId, user_id: user }))
    await out.record('events', event);
  return {
    format: 'caas-db.export/1',
    subject: { tenant: tenantId, user: hex },
    generatedAt: context.clock(),
    counts: out.counts,
    sha256: out.digest(),
  };
}

/** The tenant-owned collections a whole-tenant export and erase cover. */
export const tenantCollections: readonly LifecycleCollection[] = [
  'users',
  'conversations',
  'messages',
  'files',
  'groups',
  'settings',
  'events',
  'retention_policies',
  'legal_holds',
];

/**
 * Streams every document of a tenant, collection by collection in `_id` order (messages
 * conversation by conversation, through their history index). Under database-per-tenant this is
 * the tenant's database; under the shared strategy, its documents in the shared collections.
 */
export async function exportTenant(context: LifecycleContext, tenant: string, sink: ExportSink): Promise<ExportManifest> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const out = new Writer(sink);
  for (const collection of tenantCollections) {
    if (collection === 'messages') {
      for await (const conversation of keyset(
        context,
        tenantId,
        'conversations',
        'lifecycle.conversations',
        { tenant_id: tenantId },
        { _id: 1 },
      ))
        for await (const message of keyset(context, tenantId, 'messages', 'lifecycle.export (conversation)', {
          tenant_id: tenantId,
          conversation_id: conversation._id,
        }))
          await out.record('messages', message);
      continue;
    }
    for await (const document of keyset(context, tenantId, collection, 'lifecycle.export (tenant)', { tenant_id: tenantId }))
      await out.record(collection, document);
  }
  return {
    format: 'caas-db.export/1',
    subject: { tenant: tenantId },
    generatedAt: context.clock(),
    counts: out.counts,
    sha256: out.digest(),
  };
}
