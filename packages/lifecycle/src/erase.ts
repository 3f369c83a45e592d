import { createHash } from 'node:crypto';
import { type Document, ObjectId, objectIdSchema, parseInput, tenantIdSchema } from '@caas-db/core';
import { z } from 'zod';
import type { Actor, LifecycleContext } from './context.js';
import { LegalHoldError } from './errors.js';
import { tenantCollections } from './export.js';
import { LegalHolds } from './holds.js';
import { tombstoneUpdate } from './purge-engine.js';

const eraseOptionsSchema = z.strictObject({
  actor: z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: z.string().min(1).max(128) }),
  messages: z.enum(['tombstone', 'delete']).optional(),
});

/** Options of `eraseUser`. */
export interface EraseOptions {
  /** Who asked (the audit entry names them). */
  actor: Actor;
  /**
   * What happens to the messages the user sent: `tombstone` (default) keeps each as a deleted
   * message without content whose sender is a pseudonym, so threads and receipts stay consistent;
   * `delete` removes them.
   */
  messages?: 'tombstone' | 'delete';
}

/** What an erasure changed, per step. */
export interface EraseReport {
  /** The id the audit entry and the tombstones carry instead of the user's (random, linked to nothing). */
  erasureId: string;
  /** True when this call finished an erasure an earlier call had started. */
  resumed: boolean;
  counts: Record<string, number>;
}

/** A cutoff after every stored date (the largest a JavaScript Date holds). */
const END_OF_TIME = new Date(8.64e15);

/** The checkpoint task of an erasure: a hash, so the checkpoint does not store the id itself. */
function taskOf(tenant: string, user: ObjectId): string {
  return `erase:${createHash('sha256').update(`${tenant}\u0000${user.toHexString()}`).digest('hex').slice(0, 40)}`;
}

/**
 * Erases one user everywhere (GDPR art. 17): their messages' content purged and sender
 * pseudonymised (or the messages removed), their reactions, receipts and wrapped keys removed from
 * others' messages, their memberships removed (`participants`, groups), `last_message`, reply counts
 * and direct-conversation keys repaired, their relationships in others' profiles, settings,
 * uploads' metadata, analytics events and profile removed. Idempotent and resumable: the
 * pseudonym and the conversations and threads to repair are checkpointed before anything changes,
 * and every step can run again. Leaves an audit entry holding no personal data.
 * @throws {LegalHoldError} when a hold covers the tenant, the user, or a conversation holding their messages; nothing is changed.
 */
export async function eraseUser(
  context: LifecycleContext,
  holds: LegalHolds,
  tenant: string,
  userId: string | ObjectId,
  options: EraseOptions,
): Promise<EraseReport> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const user = parseInput(objectIdSchema, userId, 'userId');
  const parsed = parseInput(eraseOptionsSchema, options, 'options');
  const hex = user.toHexString();
  const access = (collection: Parameters<LifecycleContext['access']>[1]) => context.access(tenantId, collection);
  const repositories = context.data.forTenant(tenantId);

  const active = await holds.active(tenantId);
  const sentIn = await access('messages').rawDistinct('lifecycle.erase (conversations)', 'conversation_id', {
    tenant_id: tenantId,
    sender_id: user,
  });
  try {
    // The hold check names the tenant, the user, and any held conversation their messages are in.
    LegalHolds.assertNotHeld('eraseUser', active, { userIds: [user], conversationIds: sentIn });
  } catch (error) {
    if (error instanceof LegalHoldError)
      await context.audit(tenantId, 'user.erase_refused', parsed.actor, { collection: 'legal_holds', id: error.hold.id }, {});
    throw error;
  }

  const checkpoints = access('lifecycle_checkpoints');
  const task = taskOf(tenantId, user);
  const [checkpoint] = await checkpoints.rawFind('checkpoint.read', { tenant_id: tenantId, task }, { limit: 1 });
  let state = checkpoint?.state as
    | { erasure_id: string; conversations: string[]; parents: string[]; last_message_of?: string[] }
    | undefined;
  const resumed = state !== undefined;
  if (!state) {
    const memberOf = await access('conversations').rawDistinct('lifecycle.erase (memberships)', '_id', {
      tenant_id: tenantId,
      'participants.user_id': user,
    });
    const lastOf = await access('conversations').rawDistinct('lifecycle.erase (last_message)', '_id', {
      tenant_id: tenantId,
      'last_message.sender_id': user,
    });
    const parents = await access('messages').rawDistinct('lifecycle.erase (threads)', 'thread.parent_id', {
      tenant_id: tenantId,
      sender_id: user,
    });
    state = {
      erasure_id: new ObjectId().toHexString(),
      conversations: [...new Set([...sentIn, ...memberOf, ...lastOf].map(String))],
      parents: parents.filter((parent) => parent !== null && parent !== undefined).map(String),
      // Deleted conversations among them too: their last_message must not keep her id and preview.
      last_message_of: lastOf.map(String),
    };
    await checkpoints.rawUpsert(
      'checkpoint.write',
      { tenant_id: tenantId, task },
      {
        $set: { position: null, run_id: 'erase', state, processed: 0, updated_at: context.clock() },
        $setOnInsert: { created_at: context.clock(), schema_version: 1 },
      },
    );
  }
  const pseudonym = new ObjectId(state.erasure_id);
  const counts: Record<string, number> = {};

  // Their messages: tombstones under a pseudonym (or removed).
  if ((parsed.messages ?? 'tombstone') === 'tombstone') {
    counts.messagesDeleted = await repositories.messages.softDeleteWhere({ senderId: user });
    counts.messagesTombstoned = await access('messages').rawUpdateMany(
      'lifecycle.erase (tombstones)',
      { tenant_id: tenantId, sender_id: user },
      {
        ...tombstoneUpdate(),
        $set: { sender_id: pseudonym },
      },
    );
  } else {
    counts.messagesRemoved = await access('messages').rawDeleteMany('lifecycle.erase (messages)', { tenant_id: tenantId, sender_id: user });
  }
  // Their traces on others' messages.
  counts.reactionsAndReceipts = await repositories.messages.removeUserTraces(user);
  counts.wrappedKeys = await access('messages').rawUpdateMany(
    'lifecycle.erase (wrapped keys)',
    // The key is named by the user id, so no index can name it: a scan of the tenant's messages.
    { tenant_id: tenantId, $or: [{ [`content.encrypted_key.${hex}`]: { $exists: true } }] },
    { $unset: { [`content.encrypted_key.${hex}`]: '' } },
  );
  // Memberships and the denormalized fields naming them.
  counts.memberships = await repositories.conversations.removeParticipantEverywhere(user);
  const direct = await access('conversations').rawFind(
    'lifecycle.erase (direct keys)',
    { tenant_id: tenantId, dedupe_key: { $regex: hex } },
    { projection: { dedupe_key: 1 } },
  );
  await access('conversations').rawBulkWrite(
    'lifecycle.erase (direct keys)',
    direct.map((conversation) => ({
      updateOne: {
        filter: { _id: conversation._id },
        update: { $set: { dedupe_key: String(conversation.dedupe_key).replace(hex, state.erasure_id) } },
      },
    })),
  );
  counts.directKeys = direct.length;
  counts.lastMessagesRepaired = 0;
  const namedHer = new Set(state.last_message_of ?? []);
  for (const conversation of state.conversations) {
    // A conversation whose last_message named her is repaired even when deleted (its preview is
    // her ciphertext); others only when live, as their last_message is theirs to keep.
    const { consistent } = await repositories.messages
      .verifyLastMessage(conversation, { includeDeleted: namedHer.has(conversation) })
      .catch(() => ({ consistent: true }));
    if (!consistent) counts.lastMessagesRepaired += 1;
  }
  counts.replyCountsRepaired = 0;
  for (const parent of state.parents) {
    const result = await repositories.messages.recountReplies(parent).catch(() => undefined);
    if (result && result.stored !== result.actual) counts.replyCountsRepaired += 1;
  }
  counts.groupMemberships = await repositories.groups.removeMemberEverywhere(user);
  counts.groupsOwned = await access('groups').rawUpdateMany(
    'lifecycle.erase (group owners)',
    { tenant_id: tenantId, owner_id: user },
    { $set: { owner_id: pseudonym } },
  );
  // Their profile and everything that is theirs alone.
  counts.relationships = await access('users').rawUpdateMany(
    'lifecycle.erase (relationships)',
    { tenant_id: tenantId, 'relationships.user_id': user },
    { $pull: { relationships: { user_id: user } } },
  );
  counts.settings = await access('settings').rawDeleteMany('lifecycle.erase (settings)', { tenant_id: tenantId, owner_key: `user:${hex}` });
  counts.files = await access('files').rawDeleteMany('lifecycle.erase (uploads)', { tenant_id: tenantId, uploader_id: user });
  counts.events = await access('events').rawDeleteMany('lifecycle.erase (events)', { tenant_id: tenantId, user_id: user });
  counts.releasedHolds = await access('legal_holds').rawUpdateMany(
    'lifecycle.erase (released holds)',
    { tenant_id: tenantId, released_at: { $ne: null }, target_id: user },
    { $set: { target_id: pseudonym } },
  );
  counts.profile = await access('users').rawDeleteMany('lifecycle.erase (profile)', { tenant_id: tenantId, _id: user });

  await context.audit(tenantId, 'user.erase', parsed.actor, { collection: 'users', id: state.erasure_id }, { resumed, counts });
  await checkpoints.rawDeleteMany('checkpoint.clear', { tenant_id: tenantId, task });
  return { erasureId: state.erasure_id, resumed, counts };
}

/**
 * Erases a whole tenant: every document of every tenant-owned collection (its database's, under
 * database-per-tenant; its documents in the shared collections otherwise). The tenant's platform
 * records (`clients`, `billing`, `audit_logs`) stay: they are the operator's records. Its metrics go
 * too, through the metrics' own expiry purge. Refused while
 * any hold of the tenant is active.
 * @throws {LegalHoldError} naming the first active hold; nothing is changed.
 */
export async function eraseTenant(
  context: LifecycleContext,
  holds: LegalHolds,
  tenant: string,
  actor: Actor,
): Promise<Record<string, number>> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const by = parseInput(eraseOptionsSchema.shape.actor, actor, 'actor');
  const active = await holds.list(tenantId);
  const first = active[0];
  if (first) {
    await context.audit(tenantId, 'tenant.erase_refused', by, { collection: 'legal_holds', id: first.id }, {});
    throw new LegalHoldError('eraseTenant', {
      id: first.id,
      scope: first.scope,
      tenant: tenantId,
      ...(first.target && { target: first.target }),
    });
  }
  const counts: Record<string, number> = {};
  for (const collection of [...tenantCollections, 'lifecycle_checkpoints' as const])
    counts[collection] = await context
      .access(tenantId, collection)
      .rawDeleteMany('lifecycle.eraseTenant', { tenant_id: tenantId } as Document);
  // Metrics are append-only: their expiry purge is the one command that deletes them, here with a
  // cutoff after every measurement.
  counts.metrics = 0;
  const metrics = context.data.forTenant(tenantId).metrics;
  const names = await context
    .access(tenantId, 'metrics')
    .rawDistinct('lifecycle.eraseTenant (metric names)', 'name', { tenant_id: tenantId });
  for (const name of names as string[])
    for (;;) {
      const removed = await metrics.purgeExpiredBatch(name, { before: END_OF_TIME, batchSize: 1000 });
      counts.metrics += removed;
      if (removed < 1000) break;
    }
  await context.audit(tenantId, 'tenant.erase', by, { collection: 'clients', id: tenantId }, { counts });
  return counts;
}
