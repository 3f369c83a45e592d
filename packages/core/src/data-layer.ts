import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { BatchBounds } from './batching/coalescer.js';
import type { CachedRead, ReadCache } from './cache/read-cache.js';
import type { CommandObserver } from './collection/collection-command.js';
import type { CollectionPreset } from './collection/collection-preset.js';
import { type CollectionEnvironment, ScopedCollection } from './collection/scoped-collection.js';
import { internalsOf } from './connection/client-internals.js';
import type { DataClient } from './connection/data-client.js';
import { TenancyViolationError, ValidationError } from './errors.js';
import { type Listener, TypedEmitter } from './events/typed-emitter.js';
import type { IndexSyncReport, SyncIndexesOptions } from './indexes/index-sync.js';
import { invariantsLayer, type ModelInvariants } from './invariants/model-invariants.js';
import type { MessageReferenceOptions } from './model/message-references.js';
import {
  createModelRepositories,
  type ModelOptions,
  type ModelRepositories,
  type RepositoryName,
  repositoryCollections,
  type Syncable,
  type TenantRepositories,
  tenantRepositoriesOf,
} from './model/model-repositories.js';
import { type ReceiptPolicyOptions, receiptPolicySchema } from './model/read-positions.js';
import { KeysetCursorCodec } from './pagination/keyset-cursor.js';
import { CommandPipeline } from './pipeline/command-pipeline.js';
import { retryLayer, scopingLayer, tracingLayer } from './pipeline/core-layers.js';
import { type Middleware, middlewarePhases, operationContext } from './pipeline/operation.js';
import { createSend } from './pipeline/send.js';
import type { RepositoryContext, RepositoryDefinition } from './repository/repository.js';
import { tenantIdSchema } from './schema/primitives.js';
import { runInTransaction, type TransactionMode } from './transactions/transaction-context.js';
import { parseConfig, parseInput, toValidationIssues } from './validation-issues.js';

/**
 * Extends a data layer at its seams: middlewares and observers, the ambient tenant, a read cache,
 * and a hook that receives the finished data layer. `@caas-db/tenancy` and `@caas-db/cache` are two.
 */
export interface DataLayerPlugin {
  /** For error messages. */
  readonly name: string;
  /** Layers of the command pipeline, each placed by its phase (see docs/architecture.md). */
  readonly middlewares?: readonly Middleware[];
  /** See every command and its outcome. */
  readonly observers?: readonly CommandObserver[];
  /**
   * True when the plugin reads `currentOperation()` (each operation then runs in its own async
   * context). Read once the plugin is attached.
   */
  readonly bindsOperation?: boolean;
  /** The ambient tenant of the current call, used by repositories not bound with `forTenant`. */
  readonly resolveTenant?: () => string | undefined;
  /** A read-through cache the repositories use for the methods it caches (`@caas-db/cache`). */
  readonly readCache?: ReadCache;
  /**
   * Admits a cached read before the cache serves it; throws to refuse. A hit sends no command, so
   * the pipeline's `context` layers do not run for it: this is where they check it instead
   * (`@caas-db/tenancy`: the tenant must be an active client). Every plugin's hook runs, in order.
   */
  readonly admitCachedRead?: (read: CachedRead) => Promise<void>;
  /** Called once with the finished data layer (e.g. to look tenants up in `clients`). */
  attach?(layer: DataLayer): void;
}

/** Events of a data layer. */
export interface DataLayerEvents {
  /** `withTransaction` ran without a transaction because the deployment has none (`transactions: 'best-effort'`). */
  'transaction:skipped': { reason: string };
}

const batchSettingSchema = z.union([
  z.boolean(),
  z.strictObject({ maxBatch: z.number().int().min(1).max(10_000).optional(), maxWaitMS: z.number().int().min(0).max(1000).optional() }),
]);

const middlewareSchema = z.custom<Middleware>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Middleware).handle === 'function' &&
    typeof (value as Middleware).name === 'string' &&
    middlewarePhases.includes((value as Middleware).phase) &&
    (value as Middleware).phase !== 'scope' &&
    (value as Middleware).phase !== 'retry',
  'must be a Middleware ({ name, phase, handle }) of phase trace, context, guard, effects or transport',
);

const dataLayerOptionsSchema = z.strictObject({
  client: z.custom<DataClient>((value) => {
    try {
      return typeof value === 'object' && value !== null && internalsOf(value) !== undefined;
    } catch {
      return false;
    }
  }, 'must be a DataClient from createDataClient'),
  cursorSecret: z.string().min(32, 'must be at least 32 characters').optional(),
  transactions: z.enum(['required', 'best-effort']).optional(),
  validate: z.record(z.string(), z.boolean()).optional(),
  middlewares: z.array(middlewareSchema).optional(),
  observers: z.array(z.custom<CommandObserver>((value) => typeof value === 'object' && value !== null && 'observe' in value)).optional(),
  plugins: z
    .array(
      z
        .custom<DataLayerPlugin>((value) => typeof value === 'object' && value !== null && 'name' in value, 'must be a DataLayerPlugin')
        .refine((plugin) => (plugin.middlewares ?? []).every((layer) => middlewareSchema.safeParse(layer).success), {
          message: 'has a middleware that is not { name, phase, handle } of phase trace, context, guard, effects or transport',
        }),
    )
    .optional(),
  now: z.custom<() => Date>((value) => typeof value === 'function').optional(),
  presets: z
    .record(
      z.string(),
      z.strictObject({
        readPreference: z.enum(['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest']).optional(),
        readConcern: z.enum(['local', 'available', 'majority', 'linearizable', 'snapshot']).optional(),
        writeConcern: z
          .strictObject({
            w: z.union([z.number().int().min(0), z.literal('majority')]).optional(),
            journal: z.boolean().optional(),
            wtimeoutMS: z.number().int().min(0).optional(),
          })
          .optional(),
      }),
    )
    .optional(),
  batching: z.strictObject({ findById: batchSettingSchema.optional(), messages: batchSettingSchema.optional() }).optional(),
  tracing: z.strictObject({ tenant: z.boolean().optional() }).optional(),
  receipts: receiptPolicySchema.optional(),
  integrity: z
    .strictObject({
      messages: z
        .union([
          z.boolean(),
          z.strictObject({
            cacheTtlMS: z.number().int().min(0).max(3_600_000).optional(),
            cacheSize: z.number().int().min(1).max(10_000_000).optional(),
          }),
        ])
        .optional(),
    })
    .optional(),
  users: z
    .strictObject({ lastSeenResolutionMS: z.number().int().min(0).optional(), inactiveTtlSeconds: z.number().int().min(60).optional() })
    .optional(),
});

/** Options of {@link createDataLayer}. */
export interface DataLayerOptions {
  /** The connection every repository shares. */
  client: DataClient;
  /**
   * Signs pagination cursors. Give every instance of a service the same secret (32+ characters) so
   * a cursor from one instance works on another; a random per-process secret is used otherwise.
   */
  cursorSecret?: string;
  /** What `withTransaction` does on a deployment without transactions. @default 'required' */
  transactions?: TransactionMode;
  /**
   * Turn zod validation off for named repositories' hot paths (`{ messages: false }`): a repository
   * of the data model by its name (`apiKeys`, `auditLogs`), one of your own (`repository()`) by its
   * collection. The key and operator guards still run. See docs/performance.md for the measured gain.
   */
  validate?: Partial<Record<RepositoryName, boolean>> & Record<string, boolean>;
  /**
   * Layers of your own in the command pipeline, placed by phase after the plugins' layers of the
   * same phase (tracing, guards, transport-level recording). See docs/architecture.md.
   */
  middlewares?: Middleware[];
  /** Command observers (auditing, metrics). */
  observers?: CommandObserver[];
  /** Plugins such as `createTenancy(...)` from `@caas-db/tenancy`. */
  plugins?: DataLayerPlugin[];
  /** The clock for timestamps. @default () => new Date() */
  now?: () => Date;
  /** Options of the users repository (heartbeat resolution, inactive-user TTL). */
  users?: ModelOptions['users'];
  /**
   * Referential integrity of writes. `messages`: `messages.create` refuses a conversation that does
   * not exist or is deleted and a sender who is not a participant (`ReferentialIntegrityError`),
   * with one indexed read per conversation and sender, remembered `cacheTtlMS` (default 5 s; this
   * instance's own leave and delete are seen at once). On by default; `{ messages: false }` turns
   * it off (for bulk imports whose conversations arrive later, say).
   * @default { messages: true }
   */
  integrity?: { messages?: boolean | MessageReferenceOptions };
  /**
   * Where `messages.markConversationRead` also writes per-message receipts (`read_by`): direct
   * conversations and groups of at most `perMessageUpTo` participants (0: nowhere). Every
   * participant's read position is kept whatever the size. @default { perMessageUpTo: 32 }
   */
  receipts?: ReceiptPolicyOptions;
  /**
   * Read and write settings per collection (an operation class), e.g. `w: 'majority', journal: true`
   * for billing, secondaries for analytics. See `recommendedPresets`.
   */
  presets?: Partial<Record<string, CollectionPreset>>;
  /**
   * Coalescing of concurrent calls, by natural batching: a call goes out at once while fewer than
   * four batches of its kind are in flight, and queues otherwise, leaving with the others when a
   * slot frees up (so no latency is added at low load). `findById`: concurrent reads by id (per
   * repository, tenant and read options) become one `$in` query (batches of up to 100).
   * `messages`: concurrent `messages.create` calls of a tenant become one unordered `insertMany`
   * (up to 500), each call getting its own result or error. Off by default; never inside a transaction.
   */
  batching?: {
    findById?: boolean | { maxBatch?: number; maxWaitMS?: number };
    messages?: boolean | { maxBatch?: number; maxWaitMS?: number };
  };
  /**
   * What the `caas-db:operation` tracing channel carries (see docs/architecture.md). `tenant: true`
   * adds the tenant id to every trace. @default { tenant: false }
   */
  tracing?: { tenant?: boolean };
}

/** Every repository of the CAAS data model, plus transactions and index sync over them. */
export type DataLayer = ModelRepositories & {
  /** The connection underneath. */
  readonly client: DataClient;
  /**
   * Runs `fn` in one transaction: every repository call inside it uses the same session. On a
   * deployment without transactions it throws `TransactionsUnsupportedError`, or with
   * `transactions: 'best-effort'` runs `fn` without one and emits `transaction:skipped`.
   */
  withTransaction<T>(fn: () => Promise<T>): Promise<T>;
  /** Creates every repository's missing indexes and reports drift; drops nothing unless asked. */
  syncIndexes(options?: SyncIndexesOptions): Promise<IndexSyncReport[]>;
  /**
   * The collections declared tenant-owned by the repositories built so far (every repository of
   * the data model, and yours from the moment `repository()` builds them). The set is live.
   */
  tenantOwnedCollections(): ReadonlySet<string>;
  /** Database-level admin commands, through the same pipeline as every other command. */
  readonly admin: DataLayerAdmin;
  /** The pipeline's layers in the order they run, outermost first (for diagnostics and docs). */
  readonly layers: readonly { name: string; phase: Middleware['phase'] }[];
  /**
   * The repositories bound to one tenant: every command on a tenant-owned collection is scoped to
   * it (filters get `tenant_id`, inserts are stamped, a document or filter naming another tenant is
   * refused with `TenantMismatchError`). `@caas-db/tenancy` adds the rest (sub-pipelines, tenant
   * status, quotas, auditing).
   * @throws {ValidationError} when `tenantId` is not a valid tenant id.
   */
  forTenant(tenantId: string): TenantRepositories;
  /**
   * Builds a repository of your own on the same pipeline (scoping, monitoring), e.g. for a
   * collection your service adds; `tenant` binds it to one tenant.
   */
  repository<S extends z.ZodObject, R extends Syncable>(
    definition: RepositoryDefinition<S>,
    construct: new (definition: RepositoryDefinition<S>, context: RepositoryContext) => R,
    tenant?: string,
  ): R;
  /** Subscribes to a data layer event. */
  on<Name extends keyof DataLayerEvents>(event: Name, listener: Listener<DataLayerEvents[Name]>): () => void;
};

/** Database-level admin commands of a data layer. Refused in tenant scope (they reach every tenant). */
export interface DataLayerAdmin {
  /** Drops a database: the client's by default, or one named (e.g. a tenant's own, for tests). */
  dropDatabase(database?: string): Promise<void>;
  /** The names of the databases on the server. */
  listDatabases(): Promise<string[]>;
  /**
   * Runs a server command on a database (`admin` for cluster commands such as `shardCollection`)
   * through the pipeline, for commands caas-db has no typed method for (`applySharding` uses it).
   * Refused in tenant scope. `idempotent: true` lets retry re-send it when its outcome is unknown.
   * @throws {ValidationError} when the database name or the command is invalid.
   */
  runCommand(
    database: string,
    command: Record<string, unknown>,
    options?: { name?: string; idempotent?: boolean },
  ): Promise<Record<string, unknown>>;
}

/**
 * Read and write settings per operation class that a production deployment on a replica set should
 * start from: money and audit records acknowledged by a majority and journaled before a write
 * returns; analytics reading from secondaries (their dashboards tolerate seconds of lag); the
 * hot chat paths left at the client's defaults (`w: 1` is the usual choice for messages, where
 * latency matters and a rare rollback on failover is acceptable).
 */
export const recommendedPresets: Readonly<Record<string, CollectionPreset>> = {
  billing: { writeConcern: { w: 'majority', journal: true } },
  audit_logs: { writeConcern: { w: 'majority', journal: true } },
  api_keys: { writeConcern: { w: 'majority', journal: true }, readConcern: 'majority' },
  clients: { writeConcern: { w: 'majority', journal: true }, readConcern: 'majority' },
  events: { readPreference: 'secondaryPreferred' },
  metrics: { readPreference: 'secondaryPreferred' },
  aggregations: { readPreference: 'secondaryPreferred' },
};

function batchingOf(
  setting: boolean | { maxBatch?: number; maxWaitMS?: number } | undefined,
  defaults: BatchBounds,
): BatchBounds | undefined {
  if (!setting) return undefined;
  return setting === true
    ? defaults
    : { maxBatch: setting.maxBatch ?? defaults.maxBatch, maxWaitMS: setting.maxWaitMS ?? defaults.maxWaitMS };
}

/**
 * Gives a service every repository of the CAAS data model from one client.
 *
 * @example
 * ```ts
 * import { createDataClient, createDataLayer } from '@caas-db/core';
 *
 * const client = createDataClient({ uri: process.env.MONGODB_URI!, database: 'caas' });
 * const data = createDataLayer({ client, cursorSecret: process.env.CURSOR_SECRET });
 * await data.syncIndexes();
 * const alice = await data.users.create({ tenant_id: 'acme', external_id: 'alice', profile: { display_name: 'Alice' } });
 * ```
 */
export function createDataLayer(options: DataLayerOptions): DataLayer {
  parseConfig(dataLayerOptionsSchema, options);
  const { client } = options;
  const plugins = options.plugins ?? [];
  const resolveTenant = plugins.find((plugin) => plugin.resolveTenant)?.resolveTenant;
  const readCache = plugins.find((plugin) => plugin.readCache)?.readCache;
  const admitting = plugins.filter((plugin) => plugin.admitCachedRead);
  const admitCachedRead =
    admitting.length === 0
      ? undefined
      : async (read: CachedRead) => {
          for (const plugin of admitting) await plugin.admitCachedRead?.(read);
        };
  const internals = internalsOf(client);
  const presets = options.presets ?? {};
  const tenantOwned = new Map<string, boolean>();
  const declaredTenantOwned = new Set<string>();
  // First declaration wins: a definition without invariants built later for the same collection
  // (data.repository({ ...auditLogsDefinition, invariants: undefined }, Repository)) cannot lift them.
  const invariants = new Map<string, ModelInvariants>();
  // A collection no repository declared counts as tenant-owned: joins into it fail closed.
  const isTenantOwned = (collection: string) => tenantOwned.get(collection) ?? true;
  const observers = [...plugins.flatMap((plugin) => plugin.observers ?? []), ...(options.observers ?? [])];
  const pipeline = new CommandPipeline(
    [
      ...(observers.length > 0 ? [tracingLayer(observers)] : []),
      scopingLayer(async () => (await client.capabilities()).lookupLocalFieldWithPipeline),
      invariantsLayer((collection) => invariants.get(collection)),
      retryLayer(internals),
      ...plugins.flatMap((plugin) => plugin.middlewares ?? []),
      ...(options.middlewares ?? []),
    ],
    createSend(internals, (collection) => presets[collection]),
    internals.track,
  );
  pipeline.traceTenant = options.tracing?.tenant ?? false;
  const environment: CollectionEnvironment = { pipeline, resolveTenant, isTenantOwned };
  const cursors = new KeysetCursorCodec(options.cursorSecret);
  const events = new TypedEmitter<DataLayerEvents>();
  // On unless turned off: a message in a conversation that does not exist is a dangling reference.
  const messageReferences = options.integrity?.messages ?? true;
  const modelOptions: ModelOptions = {
    ...(options.users && { users: options.users }),
    ...(messageReferences !== false && { messageReferences: messageReferences === true ? {} : messageReferences }),
    ...(options.receipts && { receipts: receiptPolicySchema.parse(options.receipts) }),
  };
  const validateByCollection = new Map(
    // A data-model repository by its name (`apiKeys` → api_keys); a repository of your own by its collection.
    Object.entries(options.validate ?? {}).map(([name, on]) => [repositoryCollections[name as RepositoryName] ?? name, on]),
  );

  const repository = <S extends z.ZodObject, R extends Syncable>(
    definition: RepositoryDefinition<S>,
    construct: new (definition: RepositoryDefinition<S>, context: RepositoryContext) => R,
    tenant?: string,
  ): R => {
    const boundTenant = tenant === undefined ? undefined : parseInput(tenantIdSchema, tenant, 'tenant');
    tenantOwned.set(definition.collection, definition.tenantOwned);
    if (definition.tenantOwned) declaredTenantOwned.add(definition.collection);
    if (definition.invariants && !invariants.has(definition.collection)) invariants.set(definition.collection, definition.invariants);
    const collection = new ScopedCollection(environment, { name: definition.collection, tenantOwned: definition.tenantOwned }, boundTenant);
    const validate = validateByCollection.get(definition.collection);
    const inserts =
      definition.collection === 'messages' ? batchingOf(options.batching?.messages, { maxBatch: 500, maxWaitMS: 5 }) : undefined;
    const findById = batchingOf(options.batching?.findById, { maxBatch: 100, maxWaitMS: 5 });
    return new construct(definition, {
      collection,
      cursors,
      ...(validate !== undefined && { validate }),
      ...(options.now && { now: options.now }),
      ...(readCache && { cache: readCache }),
      ...(readCache && admitCachedRead && { admitCachedRead }),
      ...((inserts || findById) && { batching: { ...(inserts && { inserts }), ...(findById && { findById }) } }),
    });
  };

  const repositories = createModelRepositories(repository, modelOptions);
  // A service talks to many tenants; rebuilding a tenant's repositories is cheap, so keep the recent ones.
  const bound = new LRUCache<string, TenantRepositories>({ max: 10_000 });
  const forTenant = (tenantId: string): TenantRepositories => {
    const result = tenantIdSchema.safeParse(tenantId);
    if (!result.success) throw new ValidationError('tenantId', toValidationIssues(result.error.issues));
    let repositoriesOfTenant = bound.get(result.data);
    if (!repositoriesOfTenant) {
      repositoriesOfTenant = tenantRepositoriesOf(
        result.data,
        createModelRepositories((definition, construct) => repository(definition, construct, result.data), modelOptions),
      );
      bound.set(result.data, repositoriesOfTenant);
    }
    return repositoriesOfTenant;
  };

  const layer: DataLayer = {
    ...repositories,
    client,
    withTransaction: (fn) =>
      runInTransaction(client, fn, {
        mode: options.transactions ?? 'required',
        onUnsupported: (reason) => events.emit('transaction:skipped', { reason }),
      }),
    syncIndexes: async (syncOptions) => {
      const reports: IndexSyncReport[] = [];
      for (const instance of Object.values(repositories) as Syncable[]) reports.push(await instance.syncIndexes(syncOptions));
      return reports;
    },
    forTenant,
    repository,
    tenantOwnedCollections: () => declaredTenantOwned,
    admin: createAdmin(pipeline, environment),
    layers: pipeline.layers.map(({ name, phase }) => ({ name, phase })),
    on: (event, listener) => events.on(event, listener),
  };
  for (const plugin of plugins) plugin.attach?.(layer);
  // After attaching: a plugin may know only then whether it needs operations bound (the auditor).
  pipeline.bindsOperation = plugins.some((plugin) => plugin.bindsOperation === true);
  return layer;
}

function createAdmin(pipeline: CommandPipeline, environment: CollectionEnvironment): DataLayerAdmin {
  const run = (
    name: string,
    command:
      | { kind: 'dropDatabase' }
      | { kind: 'listDatabases' }
      | { kind: 'serverCommand'; database: string; command: Record<string, unknown> },
    database?: string,
    idempotent?: boolean,
  ) => {
    const tenant = environment.resolveTenant?.();
    if (tenant !== undefined)
      throw new TenancyViolationError(`admin.${name}`, `${name} reaches every tenant; refused in tenant scope (ambient tenant ${tenant})`);
    return pipeline.run(
      operationContext({
        declaration: idempotent === undefined ? name : { name, idempotent },
        collection: undefined,
        tenant: undefined,
        session: undefined,
        command,
        database,
        isTenantOwned: environment.isTenantOwned,
      }),
    );
  };
  return {
    async dropDatabase(database) {
      if (database !== undefined && (typeof database !== 'string' || !/^[^/\\. "$*<>:|?]{1,63}$/.test(database)))
        throw new ValidationError('database', [{ path: '', message: 'must be a valid database name', code: 'invalid_format' }]);
      await run('dropDatabase', { kind: 'dropDatabase' }, database);
    },
    async listDatabases() {
      const result = (await run('listDatabases', { kind: 'listDatabases' })) as { databases: { name: string }[] };
      return result.databases.map((database) => database.name);
    },
    async runCommand(database, command, options = {}) {
      if (typeof database !== 'string' || !/^[^/\\. "$*<>:|?]{1,63}$/.test(database))
        throw new ValidationError('database', [{ path: '', message: 'must be a valid database name', code: 'invalid_format' }]);
      const name = command !== null && typeof command === 'object' && !Array.isArray(command) ? Object.keys(command)[0] : undefined;
      if (name === undefined)
        throw new ValidationError('command', [
          { path: '', message: 'must be an object whose first key names the command', code: 'invalid_type' },
        ]);
      return (await run(options.name ?? name, { kind: 'serverCommand', database, command }, undefined, options.idempotent)) as Record<
        string,
        unknown
      >;
    },
  };
}
