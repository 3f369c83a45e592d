import type { Document } from 'mongodb';
import { z } from 'zod';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, tenantIdSchema } from '../schema/primitives.js';
import { plans } from './clients.js';

/** What is metered. */
export const billingMetrics = ['messages', 'storage_bytes', 'active_users', 'api_calls', 'files'] as const;

const periodSchema = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month such as 2026-11');

/**
 * The fields of a `billing` document: either a usage counter (`kind: 'usage'`, one per tenant,
 * month and metric, incremented atomically) or a plan change (`kind: 'plan'`, one per tenant and
 * `effective_from` instant, so a month may hold any number of changes). A platform collection.
 */
export const billingSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  kind: z.enum(['usage', 'plan']),
  /** The billing month, `YYYY-MM` (of `effective_from` for a plan change). */
  period: periodSchema,
  /** What a usage counter counts; absent on plan changes. */
  metric: z.enum(billingMetrics).optional(),
  quantity: z.number().min(0).optional(),
  plan: z.enum(plans).optional(),
  /** When a plan change takes effect; absent on usage counters. */
  effective_from: dateSchema.optional(),
});

/** A stored billing record. */
export type BillingRecord = StoredDocument<typeof billingSchema>;

/** The definition of `billing`. */
export const billingDefinition: RepositoryDefinition<typeof billingSchema> = {
  collection: 'billing',
  schema: billingSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [
    {
      // `effective_from` is in the key because plan changes have no `metric`: without it, two
      // changes in one month collided as (tenant, 'plan', month, null). Usage counters have no
      // `effective_from`, so they stay one per tenant, month and metric. Renamed from
      // `tenant_kind_period_metric` so that sync creates it before the old one is dropped (`dropExtra`).
      name: 'tenant_kind_period_metric_effective',
      key: { tenant_id: 1, kind: 1, period: 1, metric: 1, effective_from: 1 },
      unique: true,
      purpose: 'one usage counter per tenant, month and metric (recordUsage, usageFor); one plan change per tenant and instant (setPlan)',
    },
    {
      name: 'tenant_kind_effective',
      key: { tenant_id: 1, kind: 1, effective_from: -1, _id: -1 },
      purpose: 'the plan in effect (currentPlan)',
    },
  ],
  queries: [
    { name: 'recordUsage / usageFor', equality: ['tenant_id', 'kind', 'period'], range: ['metric'] },
    { name: 'setPlan', equality: ['tenant_id', 'kind', 'effective_from'] },
    {
      name: 'currentPlan',
      equality: ['tenant_id', 'kind'],
      sort: [
        ['effective_from', -1],
        ['_id', -1],
      ],
    },
  ],
};

/** The UTC month of a date as `YYYY-MM`. */
export function billingPeriodOf(at: Date): string {
  return at.toISOString().slice(0, 7);
}

/** Usage counters and plan history for billing. */
export class BillingRepository extends Repository<typeof billingSchema> {
  /** Adds `quantity` to a tenant's counter of `metric` for the month of `at`; safe under concurrent calls. */
  async recordUsage(tenantId: string, metric: (typeof billingMetrics)[number], quantity: number, at: Date = this.now()): Promise<void> {
    const input = this.parse(
      z.strictObject({
        tenantId: tenantIdSchema,
        metric: z.enum(billingMetrics),
        quantity: z.number().finite().min(0).max(1e15),
        at: dateSchema,
      }),
      { tenantId, metric, quantity, at },
      'usage',
    );
    const filter = { tenant_id: input.tenantId, kind: 'usage', period: billingPeriodOf(input.at), metric: input.metric };
    const now = this.now();
    const update: Document = {
      $inc: { quantity: input.quantity },
      $set: { updated_at: now },
      $setOnInsert: { created_at: now, schema_version: this.definition.schemaVersion },
    };
    await this.upsertOne('recordUsage', filter, update);
  }

  /** A tenant's usage counters of one month, by metric. */
  async usageFor(tenantId: string, period: string): Promise<Partial<Record<(typeof billingMetrics)[number], number>>> {
    const rows = await this.collection.find('usageFor', {
      tenant_id: this.parse(tenantIdSchema, tenantId, 'tenantId'),
      kind: 'usage',
      period: this.parse(periodSchema, period, 'period'),
    });
    return Object.fromEntries(rows.map((row) => [row.metric, row.quantity]));
  }

  /**
   * Records a plan change taking effect at `effectiveFrom`. Every change is kept, however many fall
   * in one month; {@link currentPlan} answers the one in effect at a moment. There is one change per
   * tenant and instant: setting a plan again at the same `effectiveFrom` (a retried request, two
   * operators racing) replaces that change's plan instead of failing, and concurrent calls are safe.
   * @returns the stored change.
   */
  async setPlan(tenantId: string, plan: (typeof plans)[number], effectiveFrom: Date = this.now()): Promise<BillingRecord> {
    const tenant = this.parse(tenantIdSchema, tenantId, 'tenantId');
    const when = this.parse(dateSchema, effectiveFrom, 'effectiveFrom');
    // An upsert on the unique (tenant, kind, month, metric, instant) key: a race of two inserts of
    // the same instant is retried as an update by `upsert`, so the last writer's plan stands.
    const { document } = await this.upsert(
      { tenant_id: tenant, kind: 'plan', effective_from: when },
      { tenant_id: tenant, kind: 'plan', period: billingPeriodOf(when), plan, effective_from: when },
    );
    return document;
  }

  /** The plan in effect at `at` (the latest change effective at or before it), or null when none was. */
  async currentPlan(tenantId: string, at: Date = this.now()): Promise<(typeof plans)[number] | null> {
    const [latest] = await this.collection.find(
      'currentPlan',
      {
        tenant_id: this.parse(tenantIdSchema, tenantId, 'tenantId'),
        kind: 'plan',
        effective_from: { $lte: this.parse(dateSchema, at, 'at') },
      },
      { sort: { effective_from: -1, _id: -1 }, limit: 1 },
    );
    return (latest?.plan as (typeof plans)[number] | undefined) ?? null;
  }
}
