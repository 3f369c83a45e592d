import {
  ConfigError,
  type DataLayer,
  type DataLayerPlugin,
  type IndexSyncReport,
  type Middleware,
  parseConfig,
  parseInput,
  type Syncable,
  tenantIdSchema,
} from '@caas-db/core';
import { z } from 'zod';
import { type AuditMode, IsolationAuditor } from './isolation-auditor.js';
import { QuotaEnforcer, type QuotaOptions, TenantUsageRepository, tenantUsageDefinition } from './quotas.js';
import {
  type StrategyOptions,
  strategyFor,
  strategyOptionsSchema,
  type TenancyStrategy,
  TenantPlacements,
  tenantDatabaseName,
} from './strategy.js';
import { currentTenant, runWithTenant } from './tenant-context.js';
import { TENANT_DATABASE_OWNER_COLLECTION } from './tenant-database-owner.js';
import { TenantDirectory, type TenantDirectoryOptions, type TenantRecord } from './tenant-directory.js';

/** Options of {@link createTenancy}. */
export interface TenancyOptions {
  /** Shared collections (default) or a database per tenant, per deployment and per plan. */
  strategy?: StrategyOptions;
  /** Require every tenant to be an active client in `clients` (cached). @default true */
  requireActiveTenant?: boolean;
  /** Caching of tenant status. */
  directory?: TenantDirectoryOptions;
  /** Per-tenant quotas; none when omitted. */
  quotas?: QuotaOptions;
  /**
   * The isolation auditor on the driver's wire-level command monitoring: defence in depth behind
   * the pipeline's scoper, which enforces isolation whatever this says. It needs a client created
   * with `monitoring: { wire: true }`, whose cost is measured in docs/performance.md: `'enforce'`
   * or `'warn'` on a client without it is a `ConfigError`.
   * @default 'enforce' on a client with wire monitoring, 'off' on one without
   */
  audit?: AuditMode | 'off';
  /**
   * Shard keys of the collections that are sharded, each starting with `tenant_id` (e.g.
   * `{ messages: ['tenant_id', 'conversation_id', '_id'] }`): the auditor checks that every command
   * carries the tenant prefix and every insert the whole key.
   */
  shardKeys?: Record<string, string[]>;
}

const tenancyOptionsSchema = z.strictObject({
  strategy: strategyOptionsSchema.optional(),
  requireActiveTenant: z.boolean().optional(),
  directory: z
    .strictObject({
      ttlMS: z.number().int().min(0).optional(),
      negativeTtlMS: z.number().int().min(0).optional(),
      maxEntries: z.number().int().min(1).optional(),
    })
    .optional(),
  quotas: z
    .strictObject({
      limits: z.union([z.custom<(record: unknown) => unknown>((value) => typeof value === 'function'), z.record(z.string(), z.unknown())]),
      rateLimitStore: z.unknown().optional(),
    })
    .optional(),
  audit: z.enum(['enforce', 'warn', 'off']).optional(),
  shardKeys: z
    .record(z.string(), z.array(z.string().min(1)).min(1))
    .refine((keys) => Object.values(keys).every((key) => key[0] === 'tenant_id'), 'every shard key must start with tenant_id')
    .optional(),
});

/** The tenancy plugin: pass it to `createDataLayer({ plugins: [tenancy] })`. */
export interface Tenancy extends DataLayerPlugin {
  /** Runs `fn` with an ambient tenant (see `runWithTenant`). */
  runWithTenant<T>(tenantId: string, fn: () => T): T;
  /** Cached tenant status from `clients`. */
  readonly directory: TenantDirectory;
  /** The isolation auditor, once attached (undefined with `audit: 'off'`). */
  readonly auditor: IsolationAuditor | undefined;
  /** The usage counters behind quotas, once attached. */
  readonly usage: TenantUsageRepository | undefined;
  /** The strategy of one tenant (it depends on its plan). */
  strategyOf(tenantId: string): Promise<TenancyStrategy>;
  /** The database a tenant's documents live in: the shared one, or its own. */
  databaseOf(tenantId: string): Promise<string>;
  /** Creates a tenant's indexes where its documents live (its own database under the database strategy). */
  provisionTenant(tenantId: string): Promise<IndexSyncReport[]>;
}

/**
 * Tenant isolation for a data layer: a fail-closed tenant context (`forTenant` or `runWithTenant`;
 * a tenant-owned collection touched without one fails with `TenantContextError` before anything
 * is sent), active-tenant checks against `clients`, complete command scoping (every filter, insert,
 * upsert, update and pipeline level), the shared and database-per-tenant strategies, per-tenant
 * quotas, and an auditor that checks every command on the wire.
 *
 * @example
 * ```ts
 * import { createDataLayer } from '@caas-db/core';
 * import { createTenancy, runWithTenant } from '@caas-db/tenancy';
 *
 * const tenancy = createTenancy({ strategy: { databasePerTenantPlans: ['enterprise'] }, quotas: { limits: { documents: { messages: 1_000_000 } } } });
 * const data = createDataLayer({ client, plugins: [tenancy] });
 * await runWithTenant('acme', () => data.messages.findByConversation(conversationId, { limit: 50 }));
 * ```
 */
export function createTenancy(options: TenancyOptions = {}): Tenancy {
  parseConfig(tenancyOptionsSchema, options);
  const strategy = options.strategy ?? {};
  const requireActive = options.requireActiveTenant ?? true;
  let layer: DataLayer | undefined;
  let usage: TenantUsageRepository | undefined;
  let auditor: IsolationAuditor | undefined;
  const attached = (): DataLayer => {
    if (!layer)
      throw new ConfigError([{ path: 'plugins', message: 'the tenancy plugin is not attached to a data layer yet', code: 'custom' }]);
    return layer;
  };
  const directory = new TenantDirectory(() => attached().clients, options.directory);
  const quotas = options.quotas ? new QuotaEnforcer(options.quotas, () => usage as TenantUsageRepository) : undefined;

  const recordOf = async (tenant: string): Promise<TenantRecord | undefined> =>
    requireActive ? directory.requireActive(tenant) : ((await directory.lookup(tenant).catch(() => null)) ?? undefined);

  const databaseFor = async (tenant: string): Promise<string | undefined> => {
    if (strategy.default !== 'database' && !strategy.databasePerTenantPlans?.length) return undefined;
    const record = await recordOf(tenant);
    return strategyFor(record?.plan, strategy) === 'database' ? tenantDatabaseName(tenant, strategy.databasePrefix) : undefined;
  };
  /**
   * Where each tenant's documents are, and who owns each tenant database: checked (or claimed) the
   * first time a tenant is routed; a tenant routed away from its documents is refused.
   */
  const placements = new TenantPlacements(attached, strategy);
  const owners = placements.owners;

  /**
   * `context`: every command needs a tenant for whatever tenant-owned data it reaches (the core
   * scoper fails closed on `requireTenant`); a tenant must be an active client; its documents may
   * live in a database of its own.
   */
  const context: Middleware = {
    name: 'tenancy-context',
    phase: 'context',
    async handle(ctx, next) {
      ctx.requireTenant = true;
      const tenant = ctx.tenant;
      if (tenant !== undefined && (ctx.aspects.tenantScoped || ctx.command.kind === 'aggregate')) await recordOf(tenant);
      if (ctx.collection?.tenantOwned) {
        if (tenant !== undefined && placements.probing(tenant)) {
          // A placement probe (before a tenant claims its own database): it reads the shared one.
          ctx.database = undefined;
        } else if (tenant !== undefined) {
          const { name } = ctx.collection;
          const database = owners.checkedDatabase(name, tenant) ?? (await databaseFor(tenant));
          // Refused before anything is sent when another tenant owns the database, or when the
          // tenant's documents are in another database than the one chosen (a move is needed);
          // the owner check's own commands (on its collection) skip it.
          if (name !== TENANT_DATABASE_OWNER_COLLECTION) await placements.verify(tenant, database, ctx.session);
          ctx.database = database;
        }
      }
      return next();
    },
  };

  /**
   * `guard`: reserves quota before the scoped command is sent and settles it after with what the
   * server reports it did (see `QuotaEnforcer.enforce`); a failure or refusal anywhere inside gives
   * back what was not written.
   */
  const quota: Middleware | undefined = quotas && {
    name: 'quotas',
    phase: 'guard',
    async handle(ctx, next) {
      const tenant = ctx.tenant;
      const collection = ctx.collection;
      if (!collection?.tenantOwned || tenant === undefined || ctx.aspects.admin) return next();
      const record = requireActive ? await directory.lookup(tenant).then((found) => found ?? undefined) : undefined;
      return quotas.enforce(ctx, next, collection.name, tenant, record);
    },
  };

  /** `transport`: fails an operation whose wire command the auditor found unscoped (enforce mode). */
  const audit: Middleware = {
    name: 'isolation-audit',
    phase: 'transport',
    handle(ctx, next) {
      const watching = auditor;
      if (!watching) return next();
      return next().then((result) => {
        watching.assertClean(ctx);
        return result;
      });
    },
  };

  let auditMode: AuditMode | 'off' = options.audit ?? 'off';
  const tenancy: Tenancy = {
    name: '@caas-db/tenancy',
    middlewares: [context, ...(quota ? [quota] : []), ...(options.audit === 'off' ? [] : [audit])],
    resolveTenant: currentTenant,
    // The auditor fails an operation in enforce mode by attributing wire commands to it (known once attached).
    get bindsOperation() {
      return auditor !== undefined && auditMode === 'enforce';
    },
    // A cache hit sends no command, so `context` above does not run for it: the same active-tenant
    // check admits it (a suspended tenant is refused from the cache as from MongoDB).
    async admitCachedRead(read) {
      if (!requireActive || read.tenant === undefined || read.tenantOwned === false) return;
      await directory.requireActive(read.tenant);
    },
    attach(dataLayer) {
      layer = dataLayer;
      usage = dataLayer.repository(tenantUsageDefinition, TenantUsageRepository);
      const wire = dataLayer.client.config.wireMonitoring;
      auditMode = options.audit ?? (wire ? 'enforce' : 'off');
      const mode = auditMode;
      if (mode !== 'off') {
        if (!wire) {
          throw new ConfigError([
            {
              path: 'audit',
              message: `audit: '${mode}' watches the driver's wire-level command monitoring: create the client with createDataClient({ …, monitoring: { wire: true } })`,
              code: 'custom',
            },
          ]);
        }
        auditor = new IsolationAuditor(dataLayer.client, {
          mode,
          // The data layer declares every repository's collection when it builds it, before its first command.
          tenantOwned: () => dataLayer.tenantOwnedCollections(),
          ...(options.shardKeys && { shardKeys: options.shardKeys }),
        });
      }
    },
    runWithTenant,
    directory,
    get auditor() {
      return auditor;
    },
    get usage() {
      return usage;
    },
    async strategyOf(tenantId) {
      const tenant = parseTenant(tenantId);
      return strategyFor((await recordOf(tenant))?.plan, strategy);
    },
    async databaseOf(tenantId) {
      return (await databaseFor(parseTenant(tenantId))) ?? attached().client.databaseName;
    },
    async provisionTenant(tenantId) {
      const repositories = attached().forTenant(parseTenant(tenantId));
      const reports: IndexSyncReport[] = [];
      for (const repository of Object.values(repositories) as Syncable[]) {
        if ((repository as { definition?: { tenantOwned: boolean } }).definition?.tenantOwned) reports.push(await repository.syncIndexes());
      }
      return reports;
    },
  };
  return tenancy;
}

function parseTenant(tenantId: string): string {
  return parseInput(tenantIdSchema, tenantId, 'tenantId');
}
