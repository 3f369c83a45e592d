import { type ObjectId, objectIdSchema, parseInput, tenantIdSchema } from '@caas-db/core';
import { type MessageRule, messageRuleSchema, type RetentionPolicy, retentionPolicySchema } from './collections.js';
import type { LifecycleContext } from './context.js';

/** A policy as stored and resolved: every rule present (defaults filled in). */
export interface ResolvedPolicy {
  messages: { keepDays: number | null; deletedContentGraceDays: number | null; archive: boolean };
  conversationTypes: Partial<Record<'direct' | 'group' | 'channel', MessageRule>>;
  events: { keepDays: number | null };
  metrics: { keepDays: number | null };
  fileShares: { expire: boolean };
}

/** What holds when a tenant set nothing: keep everything, purge soft-deleted content after 30 days, expire shares. */
export const defaultPolicy: ResolvedPolicy = {
  messages: { keepDays: null, deletedContentGraceDays: 30, archive: false },
  conversationTypes: {},
  events: { keepDays: null },
  metrics: { keepDays: null },
  fileShares: { expire: true },
};

function resolve(policy: RetentionPolicy | undefined): ResolvedPolicy {
  const parsed = retentionPolicySchema.parse(policy ?? {});
  return {
    messages: {
      keepDays: parsed.messages?.keepDays !== undefined ? parsed.messages.keepDays : defaultPolicy.messages.keepDays,
      deletedContentGraceDays:
        parsed.messages?.deletedContentGraceDays !== undefined
          ? parsed.messages.deletedContentGraceDays
          : defaultPolicy.messages.deletedContentGraceDays,
      archive: parsed.messages?.archive ?? false,
    },
    conversationTypes: parsed.conversationTypes ?? {},
    events: parsed.events ?? defaultPolicy.events,
    metrics: parsed.metrics ?? defaultPolicy.metrics,
    fileShares: parsed.fileShares ?? defaultPolicy.fileShares,
  };
}

/** The message rule of one conversation: its own override, else its type's, else the tenant's. */
export function messageRuleFor(
  policy: ResolvedPolicy,
  conversationType: string | undefined,
  override: MessageRule | undefined,
): ResolvedPolicy['messages'] {
  const byType = policy.conversationTypes[conversationType as 'direct'] ?? {};
  const pick = <K extends 'keepDays' | 'deletedContentGraceDays'>(key: K) =>
    override?.[key] !== undefined ? override[key] : byType[key] !== undefined ? byType[key] : policy.messages[key];
  return {
    keepDays: pick('keepDays') ?? null,
    deletedContentGraceDays: pick('deletedContentGraceDays') ?? null,
    archive: override?.archive ?? byType.archive ?? policy.messages.archive,
  };
}

/**
 * Retention policies, stored validated per tenant (`retention_policies`, scope `tenant`) and per
 * conversation (scope `conversation:<id>`, message rules only), readable through {@link get}.
 */
export class RetentionPolicies {
  readonly #context: LifecycleContext;

  constructor(context: LifecycleContext) {
    this.#context = context;
  }

  /**
   * Sets the tenant's policy (replacing the previous one). When its events rule changes, the
   * `expire_at` stamps made under the old rule are taken off (the engine removes those events by
   * the new rule), so the TTL monitor never removes an event earlier than the new rule allows.
   * @throws {ValidationError} for an invalid policy; nothing is stored.
   */
  async set(tenant: string, policy: RetentionPolicy): Promise<ResolvedPolicy> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const parsed = parseInput(retentionPolicySchema, policy, 'policy');
    const previous = await this.get(tenantId);
    await this.#store(tenantId, 'tenant', parsed);
    const resolved = resolve(parsed);
    if (previous.events.keepDays !== resolved.events.keepDays)
      await this.#context
        .access(tenantId, 'events')
        .rawUpdateMany(
          'lifecycle.policy (unstamp events)',
          { tenant_id: tenantId, expire_at: { $exists: true } },
          { $unset: { expire_at: '' } },
        );
    return resolved;
  }

  /** The tenant's policy, defaults filled in. */
  async get(tenant: string): Promise<ResolvedPolicy> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const [found] = await this.#context
      .access(tenantId, 'retention_policies')
      .rawFind('retentionPolicy.get', { tenant_id: tenantId, scope_key: 'tenant' }, { limit: 1 });
    return resolve(found?.policy as RetentionPolicy | undefined);
  }

  /** Overrides the message rule of one conversation. */
  async setForConversation(tenant: string, conversationId: string | ObjectId, rule: MessageRule): Promise<void> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    const id = parseInput(objectIdSchema, conversationId, 'conversationId');
    const parsed = parseInput(messageRuleSchema, rule, 'rule');
    await this.#store(tenantId, `conversation:${id.toHexString()}`, parsed);
  }

  /** Every conversation override of the tenant, by conversation id (hex). */
  async conversationOverrides(tenant: string): Promise<Map<string, MessageRule>> {
    const rows = await this.#context
      .access(tenant, 'retention_policies')
      .rawFind('retentionPolicy.overrides', { tenant_id: tenant, scope_key: { $gt: 'conversation:', $lt: 'conversation;' } });
    return new Map(rows.map((row) => [String(row.scope_key).slice('conversation:'.length), row.policy as MessageRule]));
  }

  async #store(tenant: string, scopeKey: string, policy: object): Promise<void> {
    const now = this.#context.clock();
    await this.#context
      .access(tenant, 'retention_policies')
      .rawUpsert(
        'retentionPolicy.set',
        { tenant_id: tenant, scope_key: scopeKey },
        { $set: { policy, updated_at: now }, $setOnInsert: { created_at: now, schema_version: 1 } },
      );
  }
}
