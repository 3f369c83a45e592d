import { type ObjectId, parseInput, tenantIdSchema } from '@caas-db/core';
import type { LifecycleContext } from './context.js';
import type { LegalHolds } from './holds.js';

/** What the orphan check found (and, with `repair`, fixed). */
export interface OrphanReport {
  /** Messages of conversations that no longer exist (repair: removed, unless a hold covers them). */
  messagesWithoutConversation: number;
  /** Live-content messages of senders that no longer exist (reported only: `eraseUser(senderId)` decides their fate). */
  messagesWithoutSender: number;
  /** Users that no longer exist but still react, hold receipts or take part in conversations and groups (repair: references removed). */
  missingUsersReferenced: number;
  /** File records of uploaders that no longer exist (reported only, like messages). */
  filesWithoutUploader: number;
  /** File shares in conversations that no longer exist (repair: made private). */
  sharesWithoutConversation: number;
  repaired: boolean;
}

const ids = (values: unknown[]): ObjectId[] => values.filter((value): value is ObjectId => value !== null && typeof value === 'object');

/**
 * Finds documents of a tenant that reference what no longer exists (conversations hard-deleted,
 * users hard-deleted without an erasure) and, with `repair`, removes the dangling references. Held
 * users and conversations are left as they are. Pseudonymised senders of erasure tombstones are not
 * orphans: tombstones carry no content.
 */
export async function checkOrphans(
  context: LifecycleContext,
  holds: LegalHolds,
  tenant: string,
  options: { repair?: boolean } = {},
): Promise<OrphanReport> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const repair = options.repair === true;
  const access = (collection: Parameters<LifecycleContext['access']>[1]) => context.access(tenantId, collection);
  const active = await holds.active(tenantId);
  const repairable = repair && !active.tenant;

  const referencedConversations = ids(
    await access('messages').rawDistinct('lifecycle.orphans (conversations)', 'conversation_id', { tenant_id: tenantId }),
  );
  const existingConversations = new Set(
    (
      await access('conversations').rawFind(
        'lifecycle.orphans (conversations exist)',
        { _id: { $in: referencedConversations } },
        { projection: { _id: 1 } },
      )
    ).map((row) => String(row._id)),
  );
  const missingConversations = referencedConversations.filter(
    (id) => !existingConversations.has(String(id)) && !active.conversations.has(String(id)),
  );
  const orphanFilter = {
    tenant_id: tenantId,
    conversation_id: { $in: missingConversations },
    ...(active.userIds.length > 0 && { sender_id: { $nin: active.userIds } }),
  };
  const messagesWithoutConversation =
    missingConversations.length === 0 ? 0 : await access('messages').rawCount('lifecycle.orphans (messages)', orphanFilter);
  if (repairable && messagesWithoutConversation > 0)
    await access('messages').rawDeleteMany('lifecycle.orphans (repair messages)', orphanFilter);

  const referencedUsers = new Map<string, ObjectId>();
  const collect = (values: unknown[]) => {
    for (const id of ids(values)) referencedUsers.set(String(id), id);
  };
  collect(await access('messages').rawDistinct('lifecycle.orphans (senders)', 'sender_id', { tenant_id: tenantId }));
  collect(await access('messages').rawDistinct('lifecycle.orphans (reactions)', 'reactions.user_id', { tenant_id: tenantId }));
  collect(await access('messages').rawDistinct('lifecycle.orphans (receipts)', 'read_by.user_id', { tenant_id: tenantId }));
  collect(await access('conversations').rawDistinct('lifecycle.orphans (participants)', 'participants.user_id', { tenant_id: tenantId }));
  collect(await access('groups').rawDistinct('lifecycle.orphans (members)', 'member_ids', { tenant_id: tenantId }));
  collect(await access('files').rawDistinct('lifecycle.orphans (uploaders)', 'uploader_id', { tenant_id: tenantId }));
  const existingUsers = new Set(
    (
      await access('users').rawFind(
        'lifecycle.orphans (users exist)',
        { _id: { $in: [...referencedUsers.values()] } },
        { projection: { _id: 1 } },
      )
    ).map((row) => String(row._id)),
  );
  const missingUsers = [...referencedUsers.values()].filter((id) => !existingUsers.has(String(id)) && !active.users.has(String(id)));
  const messagesWithoutSender =
    missingUsers.length === 0
      ? 0
      : await access('messages').rawCount('lifecycle.orphans (senders missing)', {
          tenant_id: tenantId,
          sender_id: { $in: missingUsers },
          'content.encrypted_data': { $exists: true },
        });
  const filesWithoutUploader =
    missingUsers.length === 0
      ? 0
      : await access('files').rawCount('lifecycle.orphans (uploaders missing)', {
          tenant_id: tenantId,
          uploader_id: { $in: missingUsers },
        });
  let missingUsersReferenced = 0;
  const repositories = context.data.forTenant(tenantId);
  for (const user of missingUsers) {
    const [reactions, members, groups] = await Promise.all([
      access('messages').rawCount('lifecycle.orphans (traces)', {
        tenant_id: tenantId,
        $or: [{ 'reactions.user_id': user }, { 'read_by.user_id': user }],
      }),
      access('conversations').rawCount('lifecycle.orphans (memberships)', { tenant_id: tenantId, 'participants.user_id': user }),
      access('groups').rawCount('lifecycle.orphans (group memberships)', { tenant_id: tenantId, member_ids: user }),
    ]);
    if (reactions + members + groups === 0) continue;
    missingUsersReferenced += 1;
    if (!repairable) continue;
    await repositories.messages.removeUserTraces(user);
    await repositories.conversations.removeParticipantEverywhere(user);
    await repositories.groups.removeMemberEverywhere(user);
  }

  const shareFilter = { tenant_id: tenantId, 'sharing.conversation_id': { $in: missingConversations }, 'sharing.type': 'chat' };
  const sharesWithoutConversation =
    missingConversations.length === 0 ? 0 : await access('files').rawCount('lifecycle.orphans (shares)', shareFilter);
  if (repairable && sharesWithoutConversation > 0)
    await access('files').rawUpdateMany('lifecycle.orphans (repair shares)', shareFilter, { $set: { sharing: { type: 'private' } } });
  return {
    messagesWithoutConversation,
    messagesWithoutSender,
    missingUsersReferenced,
    filesWithoutUploader,
    sharesWithoutConversation,
    repaired: repairable,
  };
}
