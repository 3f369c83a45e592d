import { z } from 'zod';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, freeFormSchema, objectIdSchema, tenantIdSchema } from '../schema/primitives.js';

const eventTypeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/, 'must be dotted lowercase words such as message.sent')
  .max(128);

/** The fields of an `events` document: one raw analytics event. */
export const eventSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  /** What happened: `message.sent`, `user.active`, `conversation.created`, `file.uploaded`, ... */
  type: eventTypeSchema,
  user_id: objectIdSchema.optional(),
  conversation_id: objectIdSchema.optional(),
  properties: freeFormSchema.optional(),
  occurred_at: dateSchema,
});

/** A stored event. */
export type AnalyticsEvent = StoredDocument<typeof eventSchema>;

/** The definition of `events`. */
export const eventsDefinition: RepositoryDefinition<typeof eventSchema> = {
  collection: 'events',
  schema: eventSchema,
  tenantOwned: true,
  schemaVersion: 1,
  sortable: ['occurred_at'],
  indexes: [
    {
      name: 'tenant_type_occurred',
      key: { tenant_id: 1, type: 1, occurred_at: -1, _id: -1 },
      purpose: 'events of one type in a time range (listByType, rollups)',
    },
    {
      name: 'tenant_occurred',
      key: { tenant_id: 1, occurred_at: -1, _id: -1 },
      purpose: 'all of a tenant’s events in a time range (listInRange, retention)',
    },
    {
      name: 'expire_at_ttl',
      key: { expire_at: 1 },
      expireAfterSeconds: 0,
      purpose: 'TTL expiry of events `@caas-db/lifecycle` stamped with `expire_at` (never stamped on held events)',
    },
    {
      name: 'shard_key',
      key: { tenant_id: 1, _id: 'hashed' },
      purpose: 'supports the hashed shard key { tenant_id, _id: hashed } (docs/sharding.md)',
    },
  ],
  queries: [
    {
      name: 'listByType',
      equality: ['tenant_id', 'type'],
      sort: [
        ['occurred_at', -1],
        ['_id', -1],
      ],
    },
    {
      name: 'listInRange',
      equality: ['tenant_id'],
      sort: [
        ['occurred_at', -1],
        ['_id', -1],
      ],
    },
  ],
};

const rangeSchema = z.strictObject({ from: dateSchema, to: dateSchema });

/** Raw analytics events, the source of truth that rollups are computed from. */
export class EventRepository extends Repository<typeof eventSchema> {
  /** Events of one type in `[from, to)`, newest first. */
  async listByType(type: string, range: { from: Date; to: Date }, options: PageOptions = {}): Promise<Page<AnalyticsEvent>> {
    const { from, to } = this.parse(rangeSchema, range, 'range');
    const filter = {
      tenant_id: this.requireTenant('listByType'),
      type: this.parse(eventTypeSchema, type, 'type'),
      occurred_at: { $gte: from, $lt: to },
    };
    return this.page('listByType', filter, { ...options, sort: { field: 'occurred_at', direction: 'desc' } });
  }

  /** All events in `[from, to)`, newest first. */
  async listInRange(range: { from: Date; to: Date }, options: PageOptions = {}): Promise<Page<AnalyticsEvent>> {
    const { from, to } = this.parse(rangeSchema, range, 'range');
    return this.page(
      'listInRange',
      { tenant_id: this.requireTenant('listInRange'), occurred_at: { $gte: from, $lt: to } },
      { ...options, sort: { field: 'occurred_at', direction: 'desc' } },
    );
  }
}
