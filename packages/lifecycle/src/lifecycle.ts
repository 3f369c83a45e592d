import {
  ConfigError,
  type DataLayer,
  type DataLayerPlugin,
  type Document,
  type Middleware,
  ObjectId,
  parseConfig,
  ValidationError,
} from '@caas-db/core';
import { z } from 'zod';
import { createArchiver, type LifecycleArchiveOptions, readArchived } from './archive.js';
import { type Clock, DAY_MS, systemClock } from './clock.js';
import type { MessageRule, RetentionPolicy } from './collections.js';
import { type Actor, LifecycleContext } from './context.js';
import { type EraseOptions, type EraseReport, eraseTenant, eraseUser } from './erase.js';
import { RetentionError } from './errors.js';
import { type ExportManifest, type ExportSink, exportTenant, exportUser } from './export.js';
import { holdGuard } from './hold-guard.js';
import { type LegalHold, LegalHolds, type PlaceHoldInput } from './holds.js';
import { checkOrphans, type OrphanReport } from './orphans.js';
import { type ResolvedPolicy, RetentionPolicies } from './policies.js';
import { PurgeEngine, type PurgeEvents, type PurgeOptions, type PurgeReport } from './purge-engine.js';
import { DocumentRateLimiter } from './rate-limiter.js';

const optionsSchema = z.strictObject({
  clock: z.custom<Clock>((value) => typeof value === 'function', 'must be a function returning a Date').optional(),
  batchSize: z.number().int().min(1).max(10_000).optional(),
  rateLimit: z.strictObject({ documentsPerSecond: z.number().min(1).max(10_000_000) }).optional(),
  holdCacheTtlMS: z.number().int().min(0).max(600_000).optional(),
  policyCacheTtlMS: z.number().int().min(0).max(3_600_000).optional(),
  archive: z
    .strictObject({
      target: z.custom<LifecycleArchiveOptions['target']>(
        (value) => typeof value === 'object' && value !== null,
        'must be an ArchiveTarget of @caas-db/archive',
      ),
      keyProvider: z.custom<LifecycleArchiveOptions['keyProvider']>(
        (value) => typeof value === 'object' && value !== null,
        'must be a KeyProvider of @caas-db/archive',
      ),
    })
    .optional(),
  audit: z
    .strictObject({
      keepDays: z.number().int().min(1).max(36_500),
      minimumRetentionDays: z.number().int().min(1).max(36_500),
    })
    .optional(),
});

/** Options of {@link createLifecycle}. */
export interface LifecycleOptions {
  /** The clock of every time rule (retention cutoffs, grace periods, hold and audit times). @default the wall clock */
  clock?: Clock;
  /** Documents per purge command. @default 1000 */
  batchSize?: number;
  /** Purge pace per tenant, in documents per second (so a purge never takes the write path's latency budget). Unlimited when absent. */
  rateLimit?: { documentsPerSecond: number };
  /** How long the delete guard trusts its view of a tenant's holds on this instance (this instance's own changes are seen at once). @default 1000 */
  holdCacheTtlMS?: number;
  /** How long the event stamper trusts a tenant's policy on this instance. @default 60000 */
  policyCacheTtlMS?: number;
  /**
   * Where archive-before-purge writes (`@caas-db/archive`'s format: compressed, encrypted,
   * checksummed batches with a manifest). Policies with `messages.archive: true` need it.
   */
  archive?: LifecycleArchiveOptions;
  /** Compliance retention of audit logs: entries are kept `keepDays`, never fewer than `minimumRetentionDays`. Audit purges are off when absent. */
  audit?: { keepDays: number; minimumRetentionDays: number };
}

/** The data lifecycle of a data layer: a plugin, plus the API that works once the data layer is built. */
export interface Lifecycle extends DataLayerPlugin {
  /** Creates the indexes of the lifecycle's own collections (per tenant database under database-per-tenant: pass the tenant). */
  syncIndexes(tenant?: string): Promise<void>;
  /** Retention policies: set, read, override per conversation. */
  readonly policies: {
    set(tenant: string, policy: RetentionPolicy): Promise<ResolvedPolicy>;
    get(tenant: string): Promise<ResolvedPolicy>;
    setForConversation(tenant: string, conversationId: string | ObjectId, rule: MessageRule): Promise<void>;
  };
  /** Legal holds. */
  readonly holds: {
    place(tenant: string, input: PlaceHoldInput): Promise<LegalHold>;
    release(tenant: string, holdId: string | ObjectId, actor: Actor): Promise<boolean>;
    list(tenant: string, options?: { includeReleased?: boolean }): Promise<LegalHold[]>;
  };
  /** Applies the tenant's policy once (see `PurgeEngine`). */
  purge(tenant: string, options?: PurgeOptions): Promise<PurgeReport>;
  /** Removes audit entries older than `audit.keepDays` (platform-wide); refused below the minimum. @returns how many were (or, dry, would be) removed. */
  purgeAuditLogs(options?: { dryRun?: boolean; actor?: { type: 'system' | 'operator'; id: string } }): Promise<number>;
  /** Subscribes to purge progress. */
  on<Name extends keyof PurgeEvents>(event: Name, listener: (data: PurgeEvents[Name]) => void): () => void;
  /** Streams everything about one user as NDJSON EJSON into `sink`; resolves with the manifest. */
  exportUser(tenant: string, userId: string | ObjectId, sink: ExportSink): Promise<ExportManifest>;
  /** Streams every document of a tenant as NDJSON EJSON into `sink`; resolves with the manifest. */
  exportTenant(tenant: string, sink: ExportSink): Promise<ExportManifest>;
  /** Erases one user everywhere (idempotent, resumable, refused under hold). */
  eraseUser(tenant: string, userId: string | ObjectId, options: EraseOptions): Promise<EraseReport>;
  /** Erases every document of a tenant (refused while any hold of the tenant is active). */
  eraseTenant(tenant: string, actor: Actor): Promise<Record<string, number>>;
  /** Finds (and with `repair` fixes) references to conversations and users that no longer exist. */
  orphans(tenant: string, options?: { repair?: boolean }): Promise<OrphanReport>;
  /** Archived documents, read back (needs the `archive` option). */
  readonly archive: {
    /** The archived documents of a tenant whose time field is in `[from, to)`. */
    read(tenant: string, range: { from: Date; to: Date }, collection?: 'messages' | 'events'): AsyncGenerator<Document>;
  };
}

/**
 * The data lifecycle of a data layer: pass it as a plugin (its delete guard refuses hard deletes of
 * held documents and stamps TTL expiry on new events), then use its API.
 *
 * @example
 * ```ts
 * const lifecycle = createLifecycle({ rateLimit: { documentsPerSecond: 5000 }, audit: { keepDays: 400, minimumRetentionDays: 365 } });
 * const data = createDataLayer({ client, plugins: [createTenancy(), lifecycle] });
 * await lifecycle.policies.set('acme', { messages: { keepDays: 365, deletedContentGraceDays: 30 } });
 * const report = await lifecycle.purge('acme');
 * ```
 * @throws {ConfigError} for invalid options; {@link RetentionError} when `audit.keepDays` is below `audit.minimumRetentionDays`.
 */
export function createLifecycle(options: LifecycleOptions = {}): Lifecycle {
  parseConfig(optionsSchema, options);
  if (options.audit && options.audit.keepDays < options.audit.minimumRetentionDays)
    throw new RetentionError(
      'audit.keepDays',
      `audit entries must be kept at least ${options.audit.minimumRetentionDays} days, not ${options.audit.keepDays}`,
    );
  const clock = options.clock ?? systemClock;
  let state: { context: LifecycleContext; holds: LegalHolds; policies: RetentionPolicies; engine: PurgeEngine } | undefined;
  const ready = () => {
    if (!state)
      throw new ConfigError([
        { path: 'plugins', message: 'the lifecycle is not attached: pass it in createDataLayer({ plugins })', code: 'custom' },
      ]);
    return state;
  };
  const policyCache = new Map<string, { at: number; events: ResolvedPolicy['events'] }>();
  const policyTtl = options.policyCacheTtlMS ?? 60_000;
  const eventsPolicy = async (tenant: string) => {
    const cached = policyCache.get(tenant);
    if (cached && Date.now() - cached.at < policyTtl) return cached.events;
    const events = (await ready().policies.get(tenant)).events;
    policyCache.set(tenant, { at: Date.now(), events });
    return events;
  };
  const guard: Middleware = holdGuard(
    () => ready().context,
    () => ready().holds,
    eventsPolicy,
  );
  const limiter = options.rateLimit ? new DocumentRateLimiter(options.rateLimit.documentsPerSecond) : undefined;

  const lifecycle: Lifecycle = {
    name: 'lifecycle',
    middlewares: [guard],
    attach(layer: DataLayer) {
      const context = new LifecycleContext(layer, clock);
      const holds = new LegalHolds(context, options.holdCacheTtlMS ?? 1000);
      const policies = new RetentionPolicies(context);
      const engine = new PurgeEngine(context, policies, holds, options.batchSize ?? 1000, limiter);
      if (options.archive) engine.archiver = createArchiver(options.archive, clock);
      // The TTL path: what a new hold covers loses its expire_at at once, so the TTL monitor never removes it.
      holds.onPlaced = async (hold) => {
        const events = context.access(hold.tenant, 'events');
        const filter =
          hold.scope === 'tenant'
            ? { tenant_id: hold.tenant, expire_at: { $exists: true } }
            : hold.scope === 'user'
              ? { tenant_id: hold.tenant, user_id: new ObjectId(hold.target), expire_at: { $exists: true } }
              : { tenant_id: hold.tenant, conversation_id: new ObjectId(hold.target), expire_at: { $exists: true } };
        await events.rawUpdateMany('lifecycle.hold (clear expire_at)', filter, { $unset: { expire_at: '' } });
      };
      state = { context, holds, policies, engine };
    },
    syncIndexes: async (tenant) => {
      const { context } = ready();
      if (tenant === undefined) return context.syncIndexes();
      for (const collection of ['retention_policies', 'legal_holds', 'lifecycle_checkpoints'] as const)
        await context.access(tenant, collection).syncIndexes();
    },
    policies: {
      set: async (tenant, policy) => {
        const resolved = await ready().policies.set(tenant, policy);
        policyCache.delete(tenant);
        return resolved;
      },
      get: (tenant) => ready().policies.get(tenant),
      setForConversation: (tenant, conversationId, rule) => ready().policies.setForConversation(tenant, conversationId, rule),
    },
    holds: {
      place: (tenant, input) => ready().holds.place(tenant, input),
      release: (tenant, holdId, actor) => ready().holds.release(tenant, holdId, actor),
      list: (tenant, listOptions) => ready().holds.list(tenant, listOptions),
    },
    purge: (tenant, purgeOptions) => ready().engine.run(tenant, purgeOptions),
    purgeAuditLogs: async (auditOptions = {}) => {
      const { context } = ready();
      if (!options.audit)
        throw new ValidationError('options', [{ path: 'audit', message: 'audit retention is not configured', code: 'custom' }]);
      const before = new Date(context.clock().getTime() - options.audit.keepDays * DAY_MS);
      if (auditOptions.dryRun) return context.countAuditBefore(before);
      return context.data.auditLogs.purgeExpired({
        before,
        minimumRetentionDays: options.audit.minimumRetentionDays,
        actor: auditOptions.actor ?? { type: 'system', id: 'lifecycle' },
      });
    },
    on: (event, listener) => ready().engine.on(event, listener),
    exportUser: (tenant, userId, sink) => exportUser(ready().context, tenant, userId, sink),
    exportTenant: (tenant, sink) => exportTenant(ready().context, tenant, sink),
    eraseUser: (tenant, userId, eraseOptions) => eraseUser(ready().context, ready().holds, tenant, userId, eraseOptions),
    eraseTenant: (tenant, actor) => eraseTenant(ready().context, ready().holds, tenant, actor),
    orphans: (tenant, orphanOptions) => checkOrphans(ready().context, ready().holds, tenant, orphanOptions),
    archive: {
      read: (tenant, range, collection) => {
        if (!options.archive) throw new ConfigError([{ path: 'archive', message: 'no archive target is configured', code: 'custom' }]);
        return readArchived(options.archive, tenant, range, collection);
      },
    },
  };
  return lifecycle;
}
