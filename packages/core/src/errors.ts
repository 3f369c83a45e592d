/**
 * The typed error hierarchy of caas-db. Every error thrown by a public entry point is a
 * {@link CaasDbError} with a stable `code`; driver errors are wrapped, never leaked untyped.
 *
 * @example
 * ```ts
 * try {
 *   await users.create(input);
 * } catch (error) {
 *   if (error instanceof DuplicateKeyError) console.log(error.key, error.value);
 *   else if (isCaasDbError(error)) console.log(error.code);
 * }
 * ```
 */

/** Stable error codes. New codes may be added in minor releases; existing ones never change. */
export const ErrorCodes = {
  CONFIG: 'E_CONFIG',
  VALIDATION: 'E_VALIDATION',
  CONNECTION: 'E_CONNECTION',
  TIMEOUT: 'E_TIMEOUT',
  DATABASE: 'E_DATABASE',
  NOT_FOUND: 'E_NOT_FOUND',
  DUPLICATE_KEY: 'E_DUPLICATE_KEY',
  CONCURRENCY: 'E_CONCURRENCY',
  CURSOR: 'E_CURSOR',
  TRANSACTIONS_UNSUPPORTED: 'E_TRANSACTIONS_UNSUPPORTED',
  CLIENT_CLOSED: 'E_CLIENT_CLOSED',
  TENANT_CONTEXT: 'E_TENANT_CONTEXT',
  TENANT_MISMATCH: 'E_TENANT_MISMATCH',
  TENANCY_VIOLATION: 'E_TENANCY_VIOLATION',
  ISOLATION_AUDIT: 'E_ISOLATION_AUDIT',
  INVARIANT: 'E_INVARIANT',
} as const;

/** The union of core's stable error codes. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Options shared by every caas-db error. */
export interface CaasDbErrorOptions {
  /** The underlying error, when this one wraps another. */
  cause?: unknown;
}

/**
 * The root of every error caas-db throws. Check `code` rather than the message. Core's codes are
 * listed in {@link ErrorCodes}; other caas-db packages add their own (`E_TENANT_CONTEXT`, ...).
 */
export abstract class CaasDbError extends Error {
  /**
   * `instanceof` holds across copies of core (a service whose ESM and CommonJS code each load one):
   * an error made by another copy carries the registry-keyed brand, and matches this class when a
   * class of the same name is on its prototype chain.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (!isBranded(value)) return false;
    for (let proto = Object.getPrototypeOf(value); proto !== null; proto = Object.getPrototypeOf(proto)) {
      if ((proto as { constructor?: { name?: string } }).constructor?.name === this.name) return true;
    }
    return false;
  }

  /** A stable, machine-readable code such as `E_VALIDATION`. */
  abstract readonly code: string;
  /**
   * `'unknown'` when the operation was a write that may have been applied before it failed (the
   * connection broke with the command in flight): do not re-send it with new ids; re-send it with
   * the same ids (inserts are idempotent by `_id`) or read to find out. Undefined otherwise: the
   * write was not applied.
   */
  outcome: 'unknown' | undefined = undefined;

  constructor(message: string, options: CaasDbErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    // Not enumerable, like Error's own `name`: the driver copies enumerable fields of an error
    // thrown inside a command into its own error types, whose `name` is a getter.
    Object.defineProperty(this, 'name', { value: new.target.name, enumerable: false, writable: true, configurable: true });
  }
}

/** Marks every caas-db error; a registry symbol, so every copy of core recognises every other's errors. */
const ERROR_BRAND = Symbol.for('@caas-db/core/error');
Object.defineProperty(CaasDbError.prototype, ERROR_BRAND, { value: true });

function isBranded(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[ERROR_BRAND] === true;
}

/** True when `error` is any caas-db error, from this copy of core or another one. */
export function isCaasDbError(error: unknown): error is CaasDbError {
  return isBranded(error);
}

/** One problem found while validating input or configuration. */
export interface ValidationIssue {
  /** Where the problem is, as a dotted path (`pool.maxSize`, `profile.display_name`). */
  path: string;
  /** What is wrong there. */
  message: string;
  /** The validator's own issue code (for zod: `too_big`, `invalid_type`, ...). */
  code: string;
}

function describeIssues(issues: readonly ValidationIssue[]): string {
  return issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ');
}

/** The configuration given to a factory is invalid. Thrown at construction, before any I/O. */
export class ConfigError extends CaasDbError {
  readonly code = ErrorCodes.CONFIG;
  /** Every problem found, each naming its field. */
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[], options: CaasDbErrorOptions = {}) {
    super(`Invalid configuration: ${describeIssues(issues)}`, options);
    this.issues = issues;
  }
}

/** Input given to a public entry point is invalid. Nothing was written. */
export class ValidationError extends CaasDbError {
  readonly code = ErrorCodes.VALIDATION;
  /** Every problem found, each naming its field. */
  readonly issues: readonly ValidationIssue[];

  constructor(subject: string, issues: readonly ValidationIssue[], options: CaasDbErrorOptions = {}) {
    super(`Invalid ${subject}: ${describeIssues(issues)}`, options);
    this.issues = issues;
  }
}

/** The server could not be reached, or the connection broke and retries were exhausted. */
export class ConnectionError extends CaasDbError {
  readonly code = ErrorCodes.CONNECTION;
}

/** An operation exceeded its time budget (server selection, `maxTimeMS`, or the retry budget). */
export class TimeoutError extends CaasDbError {
  readonly code = ErrorCodes.TIMEOUT;
}

/** The server refused an operation for a reason no more specific error describes. */
export class DatabaseError extends CaasDbError {
  readonly code = ErrorCodes.DATABASE;
  /** The server's numeric error code, when it gave one. */
  readonly serverCode: number | undefined;
  /** The server's error code name (`BadValue`, `CommandNotFound`, ...), when it gave one. */
  readonly codeName: string | undefined;

  constructor(
    message: string,
    details: { serverCode?: number | undefined; codeName?: string | undefined } = {},
    options: CaasDbErrorOptions = {},
  ) {
    super(message, options);
    this.serverCode = details.serverCode;
    this.codeName = details.codeName;
  }
}

/** A document that had to exist does not (or is hidden by a soft delete). */
export class NotFoundError extends CaasDbError {
  readonly code = ErrorCodes.NOT_FOUND;
  /** The collection searched. */
  readonly collection: string;
  /** What was looked for (an id or a filter description). */
  readonly lookup: string;

  constructor(collection: string, lookup: string, options: CaasDbErrorOptions = {}) {
    super(`No document in ${collection} matches ${lookup}`, options);
    this.collection = collection;
    this.lookup = lookup;
  }
}

/** A write would break a unique index. Nothing was written by that operation. */
export class DuplicateKeyError extends CaasDbError {
  readonly code = ErrorCodes.DUPLICATE_KEY;
  /** The collection written to, when known. */
  readonly collection: string | undefined;
  /** The unique index that refused the write, when the server named it. */
  readonly index: string | undefined;
  /** The duplicated key: field names to values, as the server reported them. */
  readonly key: Readonly<Record<string, unknown>>;

  constructor(
    details: { collection?: string | undefined; index?: string | undefined; key: Record<string, unknown> },
    options: CaasDbErrorOptions = {},
  ) {
    const where = details.collection ? ` in ${details.collection}` : '';
    const index = details.index ? ` (index ${details.index})` : '';
    super(`Duplicate key${where}${index}: ${JSON.stringify(details.key)}`, options);
    this.collection = details.collection;
    this.index = details.index;
    this.key = details.key;
  }

  /** The duplicated value: the single value of a one-field key, else the whole key. */
  get value(): unknown {
    const values = Object.values(this.key);
    return values.length === 1 ? values[0] : this.key;
  }
}

/** An optimistic-concurrency check failed: the document changed since it was read. Nothing was overwritten. */
export class ConcurrencyError extends CaasDbError {
  readonly code = ErrorCodes.CONCURRENCY;
}

/** A pagination cursor is malformed, tampered with, or belongs to another query. */
export class CursorError extends CaasDbError {
  readonly code = ErrorCodes.CURSOR;
}

/** A transaction was asked for on a deployment that has none (a standalone server). */
export class TransactionsUnsupportedError extends CaasDbError {
  readonly code = ErrorCodes.TRANSACTIONS_UNSUPPORTED;
}

/** The data client was closed; no further operation can run on it. */
export class ClientClosedError extends CaasDbError {
  readonly code = ErrorCodes.CLIENT_CLOSED;

  constructor(options: CaasDbErrorOptions = {}) {
    super('The data client is closed', options);
  }
}

/** A tenant-owned collection was used where no tenant is bound (see `dataLayer.forTenant`). Nothing was sent. */
export class TenantContextError extends CaasDbError {
  readonly code = ErrorCodes.TENANT_CONTEXT;
}

/** A command named a tenant other than the bound one (a document, filter or update carrying another `tenant_id`). Nothing was sent. */
export class TenantMismatchError extends CaasDbError {
  readonly code = ErrorCodes.TENANT_MISMATCH;
  /** The tenant the repository is bound to. */
  readonly boundTenant: string;
  /** The tenant id the command carried. */
  readonly foundTenant: unknown;

  constructor(boundTenant: string, foundTenant: unknown, where: string) {
    super(`${where} names tenant ${JSON.stringify(foundTenant)} but the repository is bound to tenant ${JSON.stringify(boundTenant)}`);
    this.boundTenant = boundTenant;
    this.foundTenant = foundTenant;
  }
}

/**
 * A command cannot be scoped to one tenant (`$out`, `$merge`, server-side JavaScript, a pipeline
 * update, an update of `tenant_id`, a stage that reads across tenants, `$indexStats` in tenant
 * scope). Nothing was sent.
 */
export class TenancyViolationError extends CaasDbError {
  readonly code = ErrorCodes.TENANCY_VIOLATION;
  /** Where in the command the problem is, e.g. `pipeline.2.$lookup.pipeline.0.$out`. */
  readonly path: string;

  constructor(path: string, reason: string) {
    super(`${reason} (at ${path})`);
    this.path = path;
  }
}

/**
 * The isolation auditor found a command on the wire that was not scoped to one tenant. In
 * `enforce` mode the operation fails with this error once the driver returns (the auditor detects;
 * the scoper enforces before sending).
 */
export class IsolationAuditError extends CaasDbError {
  readonly code = ErrorCodes.ISOLATION_AUDIT;
  readonly commandName: string;
  readonly collection: string;
  readonly problems: readonly string[];

  constructor(commandName: string, collection: string, problems: readonly string[]) {
    super(`Isolation auditor: ${commandName} on ${collection} is not scoped to one tenant: ${problems.join('; ')}`);
    this.commandName = commandName;
    this.collection = collection;
    this.problems = problems;
  }
}

/**
 * A write would break an invariant its model declares (an append-only collection, a field only the
 * model's own methods write, a state that only moves forward, an immutable system field). Nothing
 * was sent.
 */
export class InvariantError extends CaasDbError {
  readonly code = ErrorCodes.INVARIANT;
  /** Where in the command the problem is, e.g. `messages.update[0].status`. */
  readonly path: string;

  constructor(path: string, reason: string) {
    super(`${reason} (at ${path})`);
    this.path = path;
  }
}
