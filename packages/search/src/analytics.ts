import {
  aggregationsDefinition,
  ConfigError,
  type DataLayer,
  type Document,
  DuplicateKeyError,
  eventsDefinition,
  type IdInput,
  type ModelRepositories,
  objectIdSchema,
  parseInput,
  type TenantOwnedRepositoryName,
} from '@caas-db/core';
import { type ZodObject, z } from 'zod';
import { PipelineRepository, type ReadPreferenceMode } from './pipeline-repository.js';

/** An event the platform tracks. */
export type TrackedEvent =
  | {
      type: 'message.sent';
      userId: IdInput;
      conversationId: IdInput;
      conversationType: 'direct' | 'group' | 'channel';
      bytes?: number;
      at?: Date;
    }
  | { type: 'user.active'; userId: IdInput; at?: Date }
  | { type: 'conversation.created'; conversationId: IdInput; conversationType: 'direct' | 'group' | 'channel'; userId?: IdInput; at?: Date }
  | { type: 'file.uploaded'; userId: IdInput; bytes: number; at?: Date };

const conversationType = z.enum(['direct', 'group', 'channel']);
const eventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('message.sent'),
    userId: objectIdSchema,
    conversationId: objectIdSchema,
    conversationType,
    bytes: z.number().int().min(0).optional(),
    at: z.date().optional(),
  }),
  z.strictObject({ type: z.literal('user.active'), userId: objectIdSchema, at: z.date().optional() }),
  z.strictObject({
    type: z.literal('conversation.created'),
    conversationId: objectIdSchema,
    conversationType,
    userId: objectIdSchema.optional(),
    at: z.date().optional(),
  }),
  z.strictObject({ type: z.literal('file.uploaded'), userId: objectIdSchema, bytes: z.number().int().min(0), at: z.date().optional() }),
]);

const daySchema = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a day such as 2026-11-26');
const monthSchema = z.string().regex(/^\d{4}-\d{2}$/, 'must be a month such as 2026-11');

/** The rollup kinds kept on every tracked event. */
export const rollupKinds = {
  messages: 'daily_messages',
  conversations: 'daily_conversations',
  files: 'daily_files',
  activeUsers: 'daily_user_activity',
  monthlyActiveUsers: 'monthly_user_activity',
  conversationActivity: 'daily_conversation_activity',
} as const;

/** One rollup document's content, as stored or as recomputed. */
export interface RollupRow {
  kind: string;
  period: string;
  key: string;
  values: Record<string, number>;
}

/** A rollup that disagrees with a recomputation from raw events. */
export interface RollupDrift {
  kind: string;
  period: string;
  key: string;
  stored: Record<string, number> | undefined;
  recomputed: Record<string, number> | undefined;
}

/** Options of {@link createAnalytics}. */
export interface AnalyticsOptions {
  /** Where analytics pipelines read (e.g. `'secondaryPreferred'`). @default 'primary' */
  readPreference?: ReadPreferenceMode;
}

const parse = parseInput;

/** The event types `track` accepts. */
const eventTypes = eventSchema.options.map((option) => option.shape.type.value);
/** Activity rollups of users with at least one event: a rollup repaired to zero is nobody's activity. */
const activeOnly = { 'values.events': { $gt: 0 } };

const dayOf = (at: Date) => at.toISOString().slice(0, 10);
const monthOf = (at: Date) => at.toISOString().slice(0, 7);

/** The rollup increments one event causes. */
function rollupsOf(event: z.output<typeof eventSchema>, at: Date): RollupRow[] {
  const day = dayOf(at);
  const activity = (user: { toHexString(): string }): RollupRow[] => [
    { kind: rollupKinds.activeUsers, period: day, key: user.toHexString(), values: { events: 1 } },
    { kind: rollupKinds.monthlyActiveUsers, period: monthOf(at), key: user.toHexString(), values: { events: 1 } },
  ];
  switch (event.type) {
    case 'message.sent':
      return [
        { kind: rollupKinds.messages, period: day, key: event.conversationType, values: { messages: 1, bytes: event.bytes ?? 0 } },
        { kind: rollupKinds.conversationActivity, period: day, key: event.conversationId.toHexString(), values: { messages: 1 } },
        ...activity(event.userId),
      ];
    case 'user.active':
      return activity(event.userId);
    case 'conversation.created':
      return [
        { kind: rollupKinds.conversations, period: day, key: event.conversationType, values: { conversations: 1 } },
        ...(event.userId ? activity(event.userId) : []),
      ];
    case 'file.uploaded':
      return [{ kind: rollupKinds.files, period: day, key: 'all', values: { files: 1, bytes: event.bytes } }, ...activity(event.userId)];
  }
}

/** The tenant analytics API: bound to the ambient tenant, or to one through `forTenant`. */
export interface Analytics {
  /** Stores the raw event and updates its rollups with `$inc`, so dashboards read one document. */
  track(event: TrackedEvent): Promise<void>;
  /** Messages per day and conversation type, from the rollups. */
  messagesPerDay(from: string, to: string): Promise<Array<{ day: string; conversationType: string; messages: number; bytes: number }>>;
  /** Distinct active users of a day, from the rollups (users with at least one event: a rollup repaired to zero is not counted). */
  dailyActiveUsers(day: string): Promise<number>;
  /** Distinct active users of a month, from the rollups (users with at least one event). */
  monthlyActiveUsers(month: string): Promise<number>;
  /** The conversations with the most messages in `[from, to]` (days), from the rollups. */
  topConversations(from: string, to: string, limit?: number): Promise<Array<{ conversationId: string; messages: number }>>;
  /** New conversations, files and bytes uploaded per day, from the rollups. */
  dailyTotals(from: string, to: string): Promise<Array<{ day: string; conversations: number; files: number; bytesUploaded: number }>>;
  /** The rollups of a day as a scan of the raw events computes them (the source of truth). */
  recomputeDay(day: string): Promise<RollupRow[]>;
  /**
   * Compares a day's stored rollups with a recomputation; `repair` overwrites each one that drifted
   * with its recomputed value (zero where no raw event is left), unless it changed since it was read.
   * Monthly activity is not a day's: see {@link verifyMonth}.
   */
  verifyDay(day: string, options?: { repair?: boolean }): Promise<RollupDrift[]>;
  /** The same for a month's activity rollups (`monthly_user_activity`), which feed {@link monthlyActiveUsers}. */
  verifyMonth(month: string, options?: { repair?: boolean }): Promise<RollupDrift[]>;
  /** Distinct active users of a month, by scanning the raw events. */
  monthlyActiveUsersFromEvents(month: string): Promise<number>;
  /** The same API bound to one tenant. */
  forTenant(tenantId: string): Analytics;
}

/**
 * Tenant analytics over `events`, `metrics` and `aggregations`: events are tracked raw and rolled
 * up incrementally (per tenant, per day or month, with `$inc`), dashboards read the rollups, and a
 * job recomputes any day from the raw events and reports (or repairs) drift. Every pipeline goes
 * through the tenant scoping; `readPreference` sends them to secondaries where allowed.
 */
export function createAnalytics(data: DataLayer, options: AnalyticsOptions = {}): Analytics {
  if (
    options.readPreference !== undefined &&
    !['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'].includes(options.readPreference)
  ) {
    throw new ConfigError([{ path: 'readPreference', message: 'must be a read preference mode', code: 'invalid_value' }]);
  }
  const build = (tenant: string | undefined): Analytics => {
    const repositories: Pick<ModelRepositories, TenantOwnedRepositoryName> = tenant === undefined ? data : data.forTenant(tenant);
    const events = data.repository(eventsDefinition, PipelineRepository<ZodObject>, tenant) as unknown as PipelineRepository<ZodObject>;
    const rollups = data.repository(
      aggregationsDefinition,
      PipelineRepository<ZodObject>,
      tenant,
    ) as unknown as PipelineRepository<ZodObject>;
    const readRollups = (operation: string, pipeline: Document[]) => rollups.run(operation, pipeline, options.readPreference);

    /**
     * Overwrites one drifted rollup with its recomputed value, as a compare-and-set: only while it
     * still holds what was read. Two repairs racing (two instances of the job) then converge: the
     * first sets the value, the second finds it changed and leaves it. A rollup a tracked event
     * changed in between is also left, for the next run, rather than losing that event's increment.
     */
    const overwrite = async (entry: RollupDrift): Promise<void> => {
      const { kind, period, key } = entry;
      const target = entry.recomputed ?? Object.fromEntries(Object.keys(entry.stored ?? {}).map((name) => [name, 0]));
      if (entry.stored === undefined) {
        try {
          await repositories.aggregations.create({ kind, period, key, values: target });
        } catch (error) {
          // Created since it was read (by another repair or a tracked event): left for the next run.
          if (!(error instanceof DuplicateKeyError)) throw error;
        }
        return;
      }
      const unchanged: Document = { kind, period, key };
      for (const name of new Set([...Object.keys(entry.stored), ...Object.keys(target)]))
        unchanged[`values.${name}`] = entry.stored[name] ?? { $exists: false };
      await repositories.aggregations.updateMany(unchanged, { $set: { values: target } });
    };

    /** The drift between stored and recomputed rollups (absent and zero counters are equal); repaired on request. */
    const reconcile = async (stored: Document[], recomputed: RollupRow[], repair: boolean): Promise<RollupDrift[]> => {
      const storedById = new Map(stored.map((row) => [`${row.kind}|${row.period}|${row.key}`, row.values as Record<string, number>]));
      const recomputedById = new Map(recomputed.map((row) => [`${row.kind}|${row.period}|${row.key}`, row.values]));
      const drift: RollupDrift[] = [];
      for (const id of new Set([...storedById.keys(), ...recomputedById.keys()])) {
        const [kind = '', period = '', key = ''] = id.split('|');
        const a = storedById.get(id);
        const b = recomputedById.get(id);
        const names = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
        if ([...names].some((name) => (a?.[name] ?? 0) !== (b?.[name] ?? 0))) drift.push({ kind, period, key, stored: a, recomputed: b });
      }
      if (repair) for (const entry of drift) await overwrite(entry);
      return drift;
    };

    const analytics: Analytics = {
      async track(event) {
        const parsed = parse(eventSchema, event, 'event');
        const at = parsed.at ?? new Date();
        const { type, at: _at, ...properties } = parsed;
        const stored: Record<string, unknown> = {};
        for (const [name, value] of Object.entries(properties))
          stored[name] = typeof value === 'object' && value !== null ? String(value) : value;
        await repositories.events.create({
          type,
          occurred_at: at,
          ...('userId' in parsed && parsed.userId && { user_id: parsed.userId }),
          ...('conversationId' in parsed && { conversation_id: parsed.conversationId }),
          properties: stored as Record<string, string | number>,
        });
        for (const row of rollupsOf(parsed, at)) await repositories.aggregations.increment(row.kind, row.period, row.key, row.values);
      },
      async messagesPerDay(from, to) {
        const rows = await repositories.aggregations.listPeriods(
          rollupKinds.messages,
          parse(daySchema, from, 'from'),
          parse(daySchema, to, 'to'),
        );
        return rows.map((row) => ({
          day: row.period,
          conversationType: row.key,
          messages: row.values.messages ?? 0,
          bytes: row.values.bytes ?? 0,
        }));
      },
      async dailyActiveUsers(day) {
        return repositories.aggregations.count({
          kind: rollupKinds.activeUsers,
          period: parse(daySchema, day, 'day'),
          ...activeOnly,
        });
      },
      async monthlyActiveUsers(month) {
        return repositories.aggregations.count({
          kind: rollupKinds.monthlyActiveUsers,
          period: parse(monthSchema, month, 'month'),
          ...activeOnly,
        });
      },
      async topConversations(from, to, limit = 10) {
        const rows = await readRollups('analytics.topConversations', [
          {
            $match: {
              kind: rollupKinds.conversationActivity,
              period: { $gte: parse(daySchema, from, 'from'), $lte: parse(daySchema, to, 'to') },
            },
          },
          { $group: { _id: '$key', messages: { $sum: '$values.messages' } } },
          { $sort: { messages: -1, _id: 1 } },
          { $limit: parse(z.number().int().min(1).max(1000), limit, 'limit') },
        ]);
        return rows.map((row) => ({ conversationId: String(row._id), messages: Number(row.messages) }));
      },
      async dailyTotals(from, to) {
        const [conversations, files] = await Promise.all([
          repositories.aggregations.listPeriods(rollupKinds.conversations, parse(daySchema, from, 'from'), parse(daySchema, to, 'to')),
          repositories.aggregations.listPeriods(rollupKinds.files, from, to),
        ]);
        const days = new Map<string, { day: string; conversations: number; files: number; bytesUploaded: number }>();
        const dayRow = (day: string) => {
          let row = days.get(day);
          if (!row) {
            row = { day, conversations: 0, files: 0, bytesUploaded: 0 };
            days.set(day, row);
          }
          return row;
        };
        for (const row of conversations) dayRow(row.period).conversations += row.values.conversations ?? 0;
        for (const row of files) {
          dayRow(row.period).files += row.values.files ?? 0;
          dayRow(row.period).bytesUploaded += row.values.bytes ?? 0;
        }
        return [...days.values()].sort((a, b) => a.day.localeCompare(b.day));
      },
      async recomputeDay(day) {
        const start = new Date(`${parse(daySchema, day, 'day')}T00:00:00.000Z`);
        const end = new Date(start.getTime() + 86_400_000);
        const raw = await events.run(
          'analytics.recomputeDay',
          [
            { $match: { occurred_at: { $gte: start, $lt: end } } },
            { $project: { type: 1, user_id: 1, conversation_id: 1, properties: 1, occurred_at: 1 } },
          ],
          options.readPreference,
        );
        const rows = new Map<string, RollupRow>();
        for (const event of raw) {
          const properties = (event.properties ?? {}) as Record<string, unknown>;
          const parsed = eventSchema.safeParse({
            type: event.type,
            ...(event.user_id && { userId: event.user_id }),
            ...(event.conversation_id && { conversationId: event.conversation_id }),
            ...(properties.conversationType !== undefined && { conversationType: properties.conversationType }),
            ...(properties.bytes !== undefined && { bytes: properties.bytes }),
          });
          if (!parsed.success) continue;
          for (const row of rollupsOf(parsed.data, event.occurred_at as Date)) {
            if (row.kind === rollupKinds.monthlyActiveUsers) continue; // a month is not a day's to recompute
            const id = `${row.kind}|${row.period}|${row.key}`;
            const existing = rows.get(id);
            if (!existing) rows.set(id, { ...row, values: { ...row.values } });
            else for (const [name, value] of Object.entries(row.values)) existing.values[name] = (existing.values[name] ?? 0) + value;
          }
        }
        return [...rows.values()];
      },
      async verifyDay(day, verifyOptions = {}) {
        const recomputed = await analytics.recomputeDay(day);
        const stored = await readRollups('analytics.verifyDay', [
          { $match: { period: parse(daySchema, day, 'day'), kind: { $in: Object.values(rollupKinds) } } },
        ]);
        return reconcile(stored, recomputed, verifyOptions.repair === true);
      },
      async verifyMonth(month, verifyOptions = {}) {
        const start = new Date(`${parse(monthSchema, month, 'month')}-01T00:00:00.000Z`);
        const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
        // Every tracked event that names a user is one event of its user's activity (see rollupsOf).
        const perUser = await events.run(
          'analytics.verifyMonth',
          [
            { $match: { occurred_at: { $gte: start, $lt: end }, type: { $in: eventTypes }, user_id: { $exists: true } } },
            { $group: { _id: '$user_id', events: { $sum: 1 } } },
          ],
          options.readPreference,
        );
        const recomputed: RollupRow[] = perUser.map((row) => ({
          kind: rollupKinds.monthlyActiveUsers,
          period: month,
          key: String(row._id),
          values: { events: Number(row.events) },
        }));
        const stored = await readRollups('analytics.verifyMonth', [{ $match: { period: month, kind: rollupKinds.monthlyActiveUsers } }]);
        return reconcile(stored, recomputed, verifyOptions.repair === true);
      },
      async monthlyActiveUsersFromEvents(month) {
        const start = new Date(`${parse(monthSchema, month, 'month')}-01T00:00:00.000Z`);
        const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
        const [row] = await events.run(
          'analytics.monthlyActiveUsers',
          [
            { $match: { occurred_at: { $gte: start, $lt: end }, user_id: { $exists: true } } },
            { $group: { _id: '$user_id' } },
            { $count: 'users' },
          ],
          options.readPreference,
        );
        return Number(row?.users ?? 0);
      },
      forTenant: (tenantId) => build(tenantId),
    };
    return analytics;
  };
  return build(undefined);
}
