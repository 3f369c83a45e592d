import { type Document, ObjectId, objectIdSchema, parseInput, tenantIdSchema, text } from '@caas-db/core';
import { z } from 'zod';
import type { Actor, LifecycleContext } from './context.js';
import { type HoldReference, type HoldScope, LegalHoldError } from './errors.js';

const actorSchema = z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: text(128, 1) });

const placeSchema = z.discriminatedUnion('scope', [
  z.strictObject({ scope: z.literal('tenant'), reason: text(2048, 1), actor: actorSchema }),
  z.strictObject({ scope: z.literal('user'), userId: objectIdSchema, reason: text(2048, 1), actor: actorSchema }),
  z.strictObject({ scope: z.literal('conversation'), conversationId: objectIdSchema, reason: text(2048, 1), actor: actorSchema }),
]);

/** What `placeHold` takes: what to hold, why, and who asks. */
export type PlaceHoldInput =
  | { scope: 'tenant'; reason: string; actor: Actor }
  | { scope: 'user'; userId: string | ObjectId; reason: string; actor: Actor }
  | { scope: 'conversation'; conversationId: string | ObjectId; reason: string; actor: Actor };

/** An active or released legal hold. */
export interface LegalHold {
  id: string;
  tenant: string;
  scope: HoldScope;
  /** The held user or conversation (hex id). */
  target?: string;
  reason: string;
  actor: Actor;
  placedAt: Date;
  releasedAt: Date | null;
}

/** The active holds of a tenant, grouped for the checks that use them. */
export interface ActiveHolds {
  tenant: HoldReference | undefined;
  users: Map<string, HoldReference>;
  conversations: Map<string, HoldReference>;
  /** Held user ids, for `$nin` filters. */
  userIds: ObjectId[];
  /** Held conversation ids, for `$nin` filters. */
  conversationIds: ObjectId[];
}

function holdOf(document: Document): LegalHold {
  return {
    id: String(document._id),
    tenant: String(document.tenant_id),
    scope: document.scope as HoldScope,
    ...(document.target_id && { target: String(document.target_id) }),
    reason: String(document.reason),
    actor: document.actor as Actor,
    placedAt: document.placed_at as Date,
    releasedAt: (document.released_at as Date | null) ?? null,
  };
}

function referenceOf(hold: LegalHold): HoldReference {
  return { id: hold.id, scope: hold.scope, tenant: hold.tenant, ...(hold.target && { target: hold.target }) };
}

/**
 * Legal holds: placed on a tenant, a user or a conversation with a reason and an actor, active
 * until released, audit-logged both ways. Purges and erasure read them fresh; the delete guard
 * reads them through a short per-instance cache (`cacheTtlMS`) that this instance's own place and
 * release clear at once.
 */
export class LegalHolds {
  readonly #context: LifecycleContext;
  readonly #cacheTtlMS: number;
  readonly #cache = new Map<string, { at: number; holds: ActiveHolds }>();
  /** Called after a hold is placed, with the hold (the TTL path clears `expire_at` of what it covers). */
  onPlaced: ((hold: LegalHold) => Promise<void>) | undefined;

  constructor(context: LifecycleContext, cacheTtlMS: number) {
    this.#context = context;
    this.#cacheTtlMS = cacheTtlMS;
  }

  /** Places a hold. @returns the hold. */
  async place(tenant: string, input: PlaceHoldInput): Promise<LegalHold> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const parsed = parseInput(placeSchema, input, 'hold');
    const _id = new ObjectId();
    const document: Document = {
      _id,
      tenant_id: tenantId,
      scope: parsed.scope,
      ...(parsed.scope === 'user' && { target_id: parsed.userId }),
      ...(parsed.scope === 'conversation' && { target_id: parsed.conversationId }),
      reason: parsed.reason,
      actor: parsed.actor,
      placed_at: this.#context.clock(),
      released_at: null,
    };
    await this.#context.access(tenantId, 'legal_holds').rawInsert('legalHold.place', document);
    this.#cache.delete(tenantId);
    const hold = holdOf(document);
    // The audit entry names the hold, not the person: the hold document is the record of whom it covers.
    await this.#context.audit(
      tenantId,
      'legal_hold.place',
      parsed.actor,
      { collection: 'legal_holds', id: hold.id },
      { scope: hold.scope },
    );
    await this.onPlaced?.(hold);
    return hold;
  }

  /**
   * Releases an active hold. @returns false when it was already released.
   * @throws {NotFoundError}-free: an unknown id returns false too.
   */
  async release(tenant: string, holdId: string | ObjectId, actor: Actor): Promise<boolean> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const id = parseInput(objectIdSchema, holdId, 'holdId');
    const by = parseInput(actorSchema, actor, 'actor');
    const changed = await this.#context
      .access(tenantId, 'legal_holds')
      .rawUpdateMany(
        'legalHold.release',
        { _id: id, released_at: null },
        { $set: { released_at: this.#context.clock(), released_by: by } },
      );
    this.#cache.delete(tenantId);
    if (changed === 1)
      await this.#context.audit(tenantId, 'legal_hold.release', by, { collection: 'legal_holds', id: id.toHexString() }, {});
    return changed === 1;
  }

  /** Every hold of the tenant, active and released, oldest first. */
  async list(tenant: string, options: { includeReleased?: boolean } = {}): Promise<LegalHold[]> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const access = this.#context.access(tenantId, 'legal_holds');
    const active = await access.rawFind('legalHolds.active', { tenant_id: tenantId, released_at: null }, { sort: { _id: 1 } });
    const released = options.includeReleased
      ? await access.rawFind('legalHolds.released', { tenant_id: tenantId, released_at: { $ne: null } }, { sort: { _id: 1 } })
      : [];
    return [...active, ...released].map(holdOf).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The tenant's active holds, read now. */
  async active(tenant: string): Promise<ActiveHolds> {
    const holds = await this.list(tenant);
    const grouped: ActiveHolds = { tenant: undefined, users: new Map(), conversations: new Map(), userIds: [], conversationIds: [] };
    for (const hold of holds) {
      const reference = referenceOf(hold);
      if (hold.scope === 'tenant') grouped.tenant ??= reference;
      else if (hold.scope === 'user' && hold.target) {
        grouped.users.set(hold.target, reference);
        grouped.userIds.push(new ObjectId(hold.target));
      } else if (hold.target) {
        grouped.conversations.set(hold.target, reference);
        grouped.conversationIds.push(new ObjectId(hold.target));
      }
    }
    this.#cache.set(tenant, { at: Date.now(), holds: grouped });
    return grouped;
  }

  /** The tenant's active holds through the per-instance cache (the delete guard). */
  async activeCached(tenant: string): Promise<ActiveHolds> {
    const cached = this.#cache.get(tenant);
    if (cached && Date.now() - cached.at < this.#cacheTtlMS) return cached.holds;
    return this.active(tenant);
  }

  /**
   * Throws when a hold covers the tenant, or any of the users or conversations named.
   * @throws {LegalHoldError} naming the first covering hold.
   */
  static assertNotHeld(
    operation: string,
    holds: ActiveHolds,
    subjects: { userIds?: readonly unknown[]; conversationIds?: readonly unknown[] } = {},
  ): void {
    if (holds.tenant) throw new LegalHoldError(operation, holds.tenant);
    for (const user of subjects.userIds ?? []) {
      const hold = holds.users.get(String(user));
      if (hold) throw new LegalHoldError(operation, hold);
    }
    for (const conversation of subjects.conversationIds ?? []) {
      const hold = holds.conversations.get(String(conversation));
      if (hold) throw new LegalHoldError(operation, hold);
    }
  }
}
