import type { ClientSession } from 'mongodb';
import type { CollectionCommand, CommandKind } from '../collection/collection-command.js';

/**
 * What an operation is, declared where the operation is defined, never guessed from its command.
 * Layers decide by these alone: retry re-sends only `idempotent` operations whose outcome is
 * unknown, tenancy scopes `tenantScoped` ones and refuses `admin` ones it cannot scope, the cache
 * invalidates after `write`s.
 */
export interface OperationAspects {
  /** Whether the operation reads or changes data (or schema, for admin commands). */
  readonly access: 'read' | 'write';
  /** True when applying the operation twice has the effect of applying it once. */
  readonly idempotent: boolean;
  /** True when the operation reads or writes one tenant's documents (its collection is tenant-owned). */
  readonly tenantScoped: boolean;
  /** True for schema and server commands (indexes, explain, `$indexStats`, collections, databases). */
  readonly admin: boolean;
  /**
   * True for a write that completes another write already applied (its denormalized fields, such
   * as a conversation's `last_message` after a message was stored): part of that write, so a write
   * rate limit does not count or refuse it a second time.
   */
  readonly followUp: boolean;
}

/**
 * How a call site names and declares its operation: a name (`markAsRead`) takes the defaults of
 * its command kind; writes are declared `idempotent` explicitly where they are (a `$set` by id).
 */
export type OperationDeclaration =
  | string
  | {
      readonly name: string;
      readonly idempotent?: boolean;
      /** The model's grant, for domain methods that write fields its invariants guard. */
      readonly grant?: symbol;
      /** A write completing another already applied (see {@link OperationAspects.followUp}). @default false */
      readonly followUp?: boolean;
    };

/** The collection an operation addresses. */
export interface CollectionInfo {
  readonly name: string;
  /** True when every document carries `tenant_id` and belongs to one tenant. */
  readonly tenantOwned: boolean;
}

/** Everything a middleware knows about one operation; `command` and `database` are what layers rewrite. */
export interface OperationContext {
  /** `<collection>.<method>`, e.g. `messages.markAsRead`; `admin.dropDatabase` for database commands. */
  readonly operation: string;
  /** The collection addressed; undefined for database-level admin commands. */
  readonly collection: CollectionInfo | undefined;
  /** The tenant the operation runs for: the repository's binding, else the ambient one (`runWithTenant`). */
  readonly tenant: string | undefined;
  /** The transaction's session, when the operation runs inside `withTransaction`. */
  readonly session: ClientSession | undefined;
  readonly aspects: OperationAspects;
  /** The command as data. Layers replace it (scoping) before the innermost layer sends it. */
  command: CollectionCommand;
  /** The database to send to; undefined means the client's. A layer sets it (database per tenant). */
  database: string | undefined;
  /**
   * True once a layer requires a tenant for every tenant-owned collection the command touches
   * (`@caas-db/tenancy` sets it): the scoper then fails closed instead of leaving an unbound
   * command unscoped.
   */
  requireTenant: boolean;
  /** Whether a collection's documents belong to tenants (unknown collections count as tenant-owned). */
  readonly isTenantOwned: (collection: string) => boolean;
  /**
   * True once the innermost step handed the command to the driver (at least one attempt): a
   * failure after that may have applied the write, one before it did not.
   */
  sent: boolean;
  /** The grant the operation's call site holds (see `ModelInvariants`), if any. */
  readonly grant: symbol | undefined;
  /** The names of the layers the operation entered, in order (one entry per attempt for inner layers). */
  readonly layers: string[];
  /**
   * When the operation's time budget runs out (`performance.now()` time), set by the `time-budget`
   * layer (`timeBudget()`); each attempt gives the server what is left as `maxTimeMS`.
   */
  deadline?: number;
}

/** Calls the rest of the pipeline; it may be called again (retry) and resolves to the command's result. */
export type Next = () => Promise<unknown>;

/**
 * Where a middleware runs, outermost first. Within a phase, middlewares run in registration order.
 * - `trace`: sees the whole operation, its final command, duration and outcome (monitoring).
 * - `context`: establishes who the operation runs for (tenant checks, database routing).
 * - `scope`: core's tenant scoper (one per pipeline).
 * - `guard`: admits or refuses the scoped command (quotas, invariants).
 * - `effects`: reacts to the outcome (cache invalidation, derived state).
 * - `retry`: core's retry of transient failures and error translation (one per pipeline).
 * - `transport`: runs once per attempt, right before the driver (auditing, recording).
 */
export type MiddlewarePhase = 'trace' | 'context' | 'scope' | 'guard' | 'effects' | 'retry' | 'transport';

/** The phases in order, outermost first. */
export const middlewarePhases: readonly MiddlewarePhase[] = ['trace', 'context', 'scope', 'guard', 'effects', 'retry', 'transport'];

/**
 * One layer of the pipeline, in the onion style of Koa and undici: it may rewrite `ctx`, refuse by
 * throwing (nothing inner runs then), call `next()` and observe or undo on its outcome. A layer
 * that reserves something before `next()` releases it when `next()` throws: that is how a refusal
 * by an inner layer unwinds through every outer one.
 */
export interface Middleware {
  /** For `ctx.layers`, errors and docs. */
  readonly name: string;
  readonly phase: MiddlewarePhase;
  handle(ctx: OperationContext, next: Next): Promise<unknown>;
}

const READ_KINDS: ReadonlySet<CommandKind> = new Set([
  'find',
  'count',
  'distinct',
  'aggregate',
  'listIndexes',
  'explain',
  'indexStats',
  'listCollections',
  'listDatabases',
]);
const ADMIN_KINDS: ReadonlySet<CommandKind> = new Set([
  'listIndexes',
  'createIndex',
  'dropIndex',
  'explain',
  'indexStats',
  'listCollections',
  'createCollection',
  'dropDatabase',
  'listDatabases',
  'serverCommand',
]);
/** Admin commands that read a collection's documents or statistics, so belong to its tenants. */
const ADMIN_READS_OF_DATA: ReadonlySet<CommandKind> = new Set(['explain', 'indexStats']);
/** Admin writes that are safe to repeat: creating what exists is a no-op. */
const IDEMPOTENT_ADMIN_WRITES: ReadonlySet<CommandKind> = new Set(['createIndex', 'createCollection', 'dropDatabase']);

/**
 * The aspects of an operation: its command kind's (reads are idempotent, admin commands are
 * admin) plus what its call site declared. A write is idempotent only when declared so.
 */
export function aspectsOf(kind: CommandKind, collection: CollectionInfo | undefined, declaration: OperationDeclaration): OperationAspects {
  const admin = ADMIN_KINDS.has(kind);
  const access = READ_KINDS.has(kind) ? 'read' : 'write';
  const declared = typeof declaration === 'string' ? undefined : declaration.idempotent;
  return {
    access,
    idempotent: declared ?? (access === 'read' || IDEMPOTENT_ADMIN_WRITES.has(kind)),
    tenantScoped: (collection?.tenantOwned ?? false) && (!admin || ADMIN_READS_OF_DATA.has(kind)),
    admin,
    followUp: access === 'write' && typeof declaration !== 'string' && declaration.followUp === true,
  };
}

/** The name of a declared operation. */
export function operationName(declaration: OperationDeclaration): string {
  return typeof declaration === 'string' ? declaration : declaration.name;
}

/** What starts one operation; everything else in its context is derived or starts empty. */
export interface OperationStart {
  /** The call site's declaration: its name (prefixed with the collection, or `admin`) and what it declares. */
  readonly declaration: OperationDeclaration;
  readonly collection: CollectionInfo | undefined;
  readonly tenant: string | undefined;
  readonly session: ClientSession | undefined;
  readonly command: CollectionCommand;
  readonly database?: string | undefined;
  readonly isTenantOwned: (collection: string) => boolean;
}

/** The context of one operation at its start: aspects derived from its command and declaration. */
export function operationContext(start: OperationStart): OperationContext {
  const { declaration, collection, command } = start;
  return {
    operation: `${collection?.name ?? 'admin'}.${operationName(declaration)}`,
    collection,
    tenant: start.tenant,
    session: start.session,
    aspects: aspectsOf(command.kind, collection, declaration),
    command,
    database: start.database,
    requireTenant: false,
    sent: false,
    isTenantOwned: start.isTenantOwned,
    grant: typeof declaration === 'string' ? undefined : declaration.grant,
    layers: [],
  };
}
