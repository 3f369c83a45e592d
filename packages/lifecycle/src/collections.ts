import { dateSchema, objectIdSchema, type RepositoryDefinition, tenantIdSchema, text } from '@caas-db/core';
import { z } from 'zod';

/** Days to keep something, or `null` for forever. */
const keepDaysSchema = z.number().int().min(0).max(36_500).nullable();

/** How long messages are kept, and how long a soft-deleted message keeps its content. */
export const messageRuleSchema = z.strictObject({
  /** Messages older than this many days are removed (`null`: kept forever). */
  keepDays: keepDaysSchema.optional(),
  /**
   * Days a soft-deleted message keeps its ciphertext, keys and preview (so `restore` can bring it
   * back); after that they are removed and a tombstone stays (`null`: kept until the message expires).
   */
  deletedContentGraceDays: keepDaysSchema.optional(),
  /** Archive messages before they are removed (needs an archive target). */
  archive: z.boolean().optional(),
});

/** A tenant's retention policy: tenant-wide rules, overridable per conversation type. */
export const retentionPolicySchema = z.strictObject({
  messages: messageRuleSchema.optional(),
  /** Message rules per conversation type (`direct`, `group`, `channel`), over the tenant's. */
  conversationTypes: z.partialRecord(z.enum(['direct', 'group', 'channel']), messageRuleSchema).optional(),
  /** Raw analytics events older than this many days are removed (by TTL where stamped, and by the engine). */
  events: z.strictObject({ keepDays: keepDaysSchema }).optional(),
  /** Metrics (measurements) older than this many days are removed by the engine, the only path that may delete them. */
  metrics: z.strictObject({ keepDays: keepDaysSchema }).optional(),
  /** File shares past `sharing.expiry` fall back to private. */
  fileShares: z.strictObject({ expire: z.boolean() }).optional(),
});

/** A tenant's retention policy as given to `setPolicy`. */
export type RetentionPolicy = z.input<typeof retentionPolicySchema>;
/** One message rule. */
export type MessageRule = z.output<typeof messageRuleSchema>;

/** The stored form: one document per tenant (`tenant`) and per overridden conversation (`conversation:<id>`). */
export const policyDocumentSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  scope_key: z.string().regex(/^(tenant|conversation:[0-9a-f]{24})$/),
  policy: z.record(z.string(), z.unknown()),
});

/** `retention_policies`: validated policies per tenant and per conversation. */
export const policiesDefinition: RepositoryDefinition<typeof policyDocumentSchema> = {
  collection: 'retention_policies',
  schema: policyDocumentSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [
    { name: 'tenant_scope', key: { tenant_id: 1, scope_key: 1 }, unique: true, purpose: 'one policy per tenant and per conversation' },
  ],
  queries: [
    { name: 'policy of a tenant or conversation', equality: ['tenant_id', 'scope_key'] },
    { name: 'conversation overrides of a tenant', equality: ['tenant_id'], range: ['scope_key'] },
    { name: 'tenant export (tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
  ],
};

/** A legal hold as stored. */
export const holdDocumentSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  scope: z.enum(['tenant', 'user', 'conversation']),
  /** The user or conversation held (absent for a tenant hold). */
  target_id: objectIdSchema.optional(),
  reason: text(2048, 1),
  actor: z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: text(128, 1) }),
  placed_at: dateSchema,
  released_at: dateSchema.nullable(),
  released_by: z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: text(128, 1) }).optional(),
});

/** `legal_holds`: holds and their releases (a released hold stays, for the record). */
export const holdsDefinition: RepositoryDefinition<typeof holdDocumentSchema> = {
  collection: 'legal_holds',
  schema: holdDocumentSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [
    {
      name: 'tenant_active',
      key: { tenant_id: 1, released_at: 1, _id: 1 },
      purpose: 'the active holds of a tenant (every purge, erase and delete checks them)',
    },
    { name: 'tenant_target', key: { tenant_id: 1, target_id: 1 }, purpose: 'the holds of one user or conversation (erasure)' },
  ],
  queries: [
    { name: 'active holds of a tenant', equality: ['tenant_id', 'released_at'], sort: [['_id', 1]] },
    { name: 'released holds of a tenant (tenant prefix)', equality: ['tenant_id'], residual: ['released_at'] },
    { name: 'released holds of an erased user', equality: ['tenant_id', 'target_id'], residual: ['released_at'] },
    { name: 'tenant export (tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
  ],
};

/** Where a purge or an erasure got to, per tenant and task. */
export const checkpointDocumentSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  /** `purge:<rule>` or `erase:<subject hash>`. */
  task: z.string().min(1).max(200),
  /** The last conversation (or document) fully processed, in `_id` order. */
  position: objectIdSchema.nullable(),
  /** The run this position belongs to: a new run with another cutoff starts over. */
  run_id: z.string().max(64),
  /** Task-specific state (an erasure's pseudonym). */
  state: z.record(z.string(), z.unknown()).optional(),
  processed: z.number().int().min(0),
});

/** `lifecycle_checkpoints`: resumable positions of purges and erasures. */
export const checkpointsDefinition: RepositoryDefinition<typeof checkpointDocumentSchema> = {
  collection: 'lifecycle_checkpoints',
  schema: checkpointDocumentSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [{ name: 'tenant_task', key: { tenant_id: 1, task: 1 }, unique: true, purpose: 'one checkpoint per tenant and task' }],
  queries: [
    { name: 'checkpoint of a task', equality: ['tenant_id', 'task'] },
    { name: 'every checkpoint of a tenant (tenant erase)', equality: ['tenant_id'] },
  ],
};
