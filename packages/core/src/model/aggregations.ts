import { z } from 'zod';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { safeKeySchema, tenantIdSchema, text } from '../schema/primitives.js';

const kindSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]*$/, 'must be a lowercase word such as daily_messages')
  .max(64);
const periodSchema = z
  .string()
  .regex(/^\d{4}(-\d{2}(-\d{2}(T\d{2})?)?)?$/, 'must be a period such as 2026, 2026-11, 2026-11-26 or 2026-11-26T13');

/** The fields of an `aggregations` document: one rollup (counters of one kind, period and key). */
export const aggregationSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  /** What is counted: `daily_messages`, `daily_active_users`, ... */
  kind: kindSchema,
  /** The period counted: a year, month, day or hour. */
  period: periodSchema,
  /** A dimension within the kind (a conversation type, a conversation id), or `all`. */
  key: text(128, 1),
  values: z.record(safeKeySchema, z.number().finite()).default({}),
});

/** A stored rollup. */
export type Aggregation = StoredDocument<typeof aggregationSchema>;

/** The definition of `aggregations`. */
export const aggregationsDefinition: RepositoryDefinition<typeof aggregationSchema> = {
  collection: 'aggregations',
  schema: aggregationSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [
    {
      name: 'tenant_kind_period_key',
      key: { tenant_id: 1, kind: 1, period: 1, key: 1 },
      unique: true,
      purpose: 'one rollup per kind, period and key (increment, get, listPeriods)',
    },
  ],
  queries: [
    { name: 'increment / get', equality: ['tenant_id', 'kind', 'period', 'key'] },
    { name: 'listPeriods', equality: ['tenant_id', 'kind'], range: ['period'] },
  ],
};

const deltasSchema = z
  .record(safeKeySchema, z.number().finite())
  .refine((deltas) => Object.keys(deltas).length > 0 && Object.keys(deltas).length <= 100, 'must have 1 to 100 counters');

/** Rollups kept incrementally with `$inc`, so dashboards read one document instead of scanning events. */
export class AggregationRepository extends Repository<typeof aggregationSchema> {
  /** Adds `deltas` to the rollup's counters, creating it at zero first; exact under concurrent calls. */
  async increment(kind: string, period: string, key: string, deltas: Record<string, number>): Promise<void> {
    const filter = {
      tenant_id: this.requireTenant('increment'),
      kind: this.parse(kindSchema, kind, 'kind'),
      period: this.parse(periodSchema, period, 'period'),
      key: this.parse(text(128, 1), key, 'key'),
    };
    const parsed = this.parse(deltasSchema, deltas, 'deltas');
    const now = this.now();
    const update = {
      $inc: Object.fromEntries(Object.entries(parsed).map(([name, delta]) => [`values.${name}`, delta])),
      $set: { updated_at: now },
      $setOnInsert: { created_at: now, schema_version: this.definition.schemaVersion },
    };
    await this.upsertOne('increment', filter, update);
  }

  /** The counters of one rollup (`{}` when nothing was counted). */
  async get(kind: string, period: string, key = 'all'): Promise<Record<string, number>> {
    const found = await this.findOne({
      tenant_id: this.requireTenant('get'),
      kind: this.parse(kindSchema, kind, 'kind'),
      period: this.parse(periodSchema, period, 'period'),
      key: this.parse(text(128, 1), key, 'key'),
    });
    return found?.values ?? {};
  }

  /** Every rollup of `kind` with a period in `[from, to]` (as strings, so `2026-11-01`..`2026-11-30` is a month of days). */
  async listPeriods(kind: string, from: string, to: string): Promise<Aggregation[]> {
    const rows = await this.collection.find(
      'listPeriods',
      {
        tenant_id: this.requireTenant('listPeriods'),
        kind: this.parse(kindSchema, kind, 'kind'),
        period: { $gte: this.parse(periodSchema, from, 'from'), $lte: this.parse(periodSchema, to, 'to') },
      },
      { sort: { period: 1, key: 1 }, limit: 10_000 },
    );
    return rows as Aggregation[];
  }
}
