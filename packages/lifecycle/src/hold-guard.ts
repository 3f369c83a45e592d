import type { Document, Middleware, OperationContext } from '@caas-db/core';
import { lifecycleGrant } from './access.js';
import { DAY_MS } from './clock.js';
import type { LifecycleContext } from './context.js';
import { type ActiveHolds, LegalHolds } from './holds.js';
import type { ResolvedPolicy } from './policies.js';

/** Collections whose documents a user or conversation hold can cover (others only by a tenant hold). */
const HELD_COLLECTIONS = new Set(['users', 'conversations', 'messages', 'files', 'events', 'groups', 'settings']);

/** The filters of the deletes a command carries, or none. */
function deletesOf(ctx: OperationContext): Document[] {
  const command = ctx.command;
  if (command.kind === 'deleteOne' || command.kind === 'deleteMany') return [command.filter];
  if (command.kind === 'bulkWrite')
    return command.operations.flatMap((operation) => {
      if ('deleteOne' in operation) return [operation.deleteOne.filter as Document];
      if ('deleteMany' in operation) return [operation.deleteMany.filter as Document];
      return [];
    });
  return [];
}

function isEmpty(holds: ActiveHolds): boolean {
  return !holds.tenant && holds.users.size === 0 && holds.conversations.size === 0;
}

/** Who and where a document is about, for the hold check. */
function subjectsOf(collection: string, document: Document): { userIds: unknown[]; conversationIds: unknown[] } {
  const userIds = [document.sender_id, document.uploader_id, document.user_id, collection === 'users' ? document._id : undefined];
  const conversationIds = [
    document.conversation_id,
    (document.sharing as Document | undefined)?.conversation_id,
    collection === 'conversations' ? document._id : undefined,
  ];
  return { userIds: userIds.filter(Boolean), conversationIds: conversationIds.filter(Boolean) };
}

/**
 * `guard`: refuses a hard delete of anything a legal hold covers (a held tenant's documents, a held
 * user's profile, messages, uploads and events, a held conversation and its messages) with
 * `LegalHoldError`, before anything is sent; and stamps `expire_at` on new analytics events of
 * tenants whose policy expires events, unless a hold covers them, for the TTL index to remove.
 * The lifecycle's own commands (purge, erase) pass: they exclude held documents themselves.
 */
export function holdGuard(
  context: () => LifecycleContext,
  holds: () => LegalHolds,
  eventsPolicy: (tenant: string) => Promise<ResolvedPolicy['events']>,
): Middleware {
  return {
    name: 'lifecycle-holds',
    phase: 'guard',
    async handle(ctx, next) {
      const collection = ctx.collection;
      const tenant = ctx.tenant;
      if (!collection?.tenantOwned || tenant === undefined || ctx.aspects.access !== 'write' || ctx.aspects.admin) return next();
      if (ctx.grant === lifecycleGrant) return next();
      if (collection.name === 'events' && (ctx.command.kind === 'insertOne' || ctx.command.kind === 'insertMany')) {
        await stampExpiry(ctx, tenant, await holds().activeCached(tenant), eventsPolicy);
        return next();
      }
      const filters = deletesOf(ctx);
      if (filters.length === 0) return next();
      const active = await holds().activeCached(tenant);
      if (isEmpty(active)) return next();
      const operation = `${collection.name}.delete`;
      LegalHolds.assertNotHeld(operation, active);
      if (!HELD_COLLECTIONS.has(collection.name)) return next();
      const access = context().access(tenant, collection.name as never);
      for (const filter of filters) {
        // Deletes are rare: read what would go (ids and references only) and check each against the holds.
        const doomed = await access.rawFind('lifecycle.holdGuard', filter, {
          limit: 1000,
          projection: { _id: 1, sender_id: 1, uploader_id: 1, user_id: 1, conversation_id: 1, 'sharing.conversation_id': 1 },
        });
        for (const document of doomed) LegalHolds.assertNotHeld(operation, active, subjectsOf(collection.name, document));
      }
      return next();
    },
  };
}

async function stampExpiry(
  ctx: OperationContext,
  tenant: string,
  active: ActiveHolds,
  eventsPolicy: (tenant: string) => Promise<ResolvedPolicy['events']>,
): Promise<void> {
  if (active.tenant) return;
  const { keepDays } = await eventsPolicy(tenant);
  if (keepDays === null) return;
  const stamp = (document: Document): Document => {
    const held =
      (document.user_id && active.users.has(String(document.user_id))) ||
      (document.conversation_id && active.conversations.has(String(document.conversation_id)));
    const occurred = document.occurred_at instanceof Date ? document.occurred_at : undefined;
    if (held || !occurred) return document;
    return { ...document, expire_at: new Date(occurred.getTime() + keepDays * DAY_MS) };
  };
  const command = ctx.command;
  if (command.kind === 'insertOne') ctx.command = { ...command, document: stamp(command.document) };
  else if (command.kind === 'insertMany') ctx.command = { ...command, documents: command.documents.map(stamp) };
}
