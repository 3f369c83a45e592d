import { z } from 'zod';
import type { IndexSyncReport, SyncIndexesOptions } from '../indexes/index-sync.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import type { RepositoryContext, RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, safeKeySchema, tenantIdSchema } from '../schema/primitives.js';
import { AppendOnlyStore } from './append-only-store.js';

/**
 * The expiry grant of `metrics`: module-private, so {@link MetricRepository.purgeExpiredBatch} (a
 * retention purge, e.g. `@caas-db/lifecycle`'s) is the only command that may delete measurements.
 */
const expiryGrant = Symbol('metrics.expiry');

const purgeBatchSchema = z.strictObject({
  before: dateSchema,
  batchSize: z.number().int().min(1).max(10_000),
});

const metricNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, 'must be dotted lowercase words such as messages.sent')
  .max(128);

/** The fields of a `metrics` measurement. */
export const metricSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  name: metricNameSchema,
  value: z.number().finite(),
  tags: z.record(safeKeySchema, z.string().max(256)).optional(),
  /** When it was measured; the time field of the time-series collection. */
  timestamp: dateSchema,
});

/** A stored measurement. */
export type Metric = StoredDocument<typeof metricSchema>;

/** The definition of `metrics`. */
export const metricsDefinition: RepositoryDefinition<typeof metricSchema> = {
  collection: 'metrics',
  schema: metricSchema,
  tenantOwned: true,
  schemaVersion: 1,
  invariants: { appendOnly: true, mayExpire: (presented) => presented === expiryGrant },
  sortable: ['timestamp'],
  indexes: [
    {
      name: 'tenant_name_timestamp',
      key: { tenant_id: 1, name: 1, timestamp: -1, _id: -1 },
      purpose: 'one metric of a tenant over time (query)',
    },
  ],
  queries: [
    {
      name: 'query',
      equality: ['tenant_id', 'name'],
      sort: [
        ['timestamp', -1],
        ['_id', -1],
      ],
    },
    {
      name: 'purgeExpiredBatch',
      equality: ['tenant_id', 'name'],
      sort: [
        ['timestamp', -1],
        ['_id', -1],
      ],
    },
  ],
};

/** The time-series options `metrics` is created with where the server supports them. */
export const metricsTimeSeries = { timeField: 'timestamp', metaField: 'tenant_id', granularity: 'minutes' } as const;

/**
 * Measurements, append-only. `syncIndexes` creates `metrics` as a time-series collection bucketed
 * by tenant where the server supports it, and as a plain collection with the same API elsewhere.
 */
export class MetricRepository {
  readonly #store: AppendOnlyStore<typeof metricSchema>;
  readonly #collection: RepositoryContext['collection'];

  constructor(definition: RepositoryDefinition<typeof metricSchema>, context: RepositoryContext) {
    this.#store = new AppendOnlyStore(definition, context);
    this.#collection = context.collection;
  }

  /** The collection name. */
  get name(): string {
    return this.#store.name;
  }

  /** The definition this repository was built from. */
  get definition(): RepositoryDefinition<typeof metricSchema> {
    return this.#store.definition;
  }

  /** Records one measurement. */
  async record(name: string, value: number, options: { tags?: Record<string, string>; at?: Date } = {}): Promise<Metric> {
    return this.#store.create({ name, value, timestamp: options.at ?? new Date(), ...(options.tags && { tags: options.tags }) });
  }

  /** Records many measurements; one invalid measurement records none. */
  async recordMany(measurements: readonly { name: string; value: number; tags?: Record<string, string>; at?: Date }[]): Promise<Metric[]> {
    return this.#store.createMany(
      measurements.map(({ at, ...measurement }) => ({ ...measurement, timestamp: at ?? new Date() })),
      { ordered: false },
    );
  }

  /** One metric in `[from, to)`, newest first. */
  async query(name: string, range: { from: Date; to: Date }, options: PageOptions = {}): Promise<Page<Metric>> {
    const { from, to } = this.#store.check(z.strictObject({ from: dateSchema, to: dateSchema }), range, 'range');
    const filter = {
      tenant_id: this.#store.tenantFor('query'),
      name: this.#store.check(metricNameSchema, name, 'name'),
      timestamp: { $gte: from, $lt: to },
    };
    return this.#store.list('query', filter, { ...options, sort: { field: 'timestamp', direction: 'desc' } });
  }

  /**
   * Removes up to `batchSize` measurements of metric `name` older than `before` (newest of them
   * first, the order of `tenant_name_timestamp`) and says how many: a retention purge calls it
   * until it returns fewer than `batchSize`, pacing and checkpointing between calls. The only path that deletes measurements; the caller audit-logs it.
   * @throws {ValidationError} for an invalid name, date or batch size; nothing is removed.
   */
  async purgeExpiredBatch(name: string, options: { before: Date; batchSize: number }): Promise<number> {
    const metric = this.#store.check(metricNameSchema, name, 'name');
    const { before, batchSize } = this.#store.check(purgeBatchSchema, options, 'options');
    const batch = await this.#store.expiredIds('purgeExpiredBatch', 'timestamp', before, batchSize, { name: metric }, -1);
    if (batch.length === 0) return 0;
    return this.#store.deleteExpired(
      'purgeExpiredBatch',
      'timestamp',
      batch.map((entry) => entry._id),
      before,
      expiryGrant,
    );
  }

  /**
   * Creates the collection (time series where supported) and its indexes, and reports drift.
   * @returns the index report plus whether the collection is a real time-series collection.
   */
  async syncIndexes(options: SyncIndexesOptions = {}): Promise<IndexSyncReport & { timeSeries: boolean }> {
    const named = { name: this.#collection.name };
    const [existing] = await this.#collection.listCollections('ensureTimeSeries', named);
    if (!existing) {
      await this.#collection
        .createCollection('ensureTimeSeries', { timeseries: metricsTimeSeries })
        .catch(() => this.#collection.createCollection('ensureTimeSeries', {}));
    }
    const [created] = await this.#collection.listCollections('ensureTimeSeries', named);
    const timeSeries = created?.type === 'timeseries';
    return { ...(await this.#store.syncIndexes(options)), timeSeries };
  }
}
