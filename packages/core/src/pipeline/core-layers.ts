import { performance } from 'node:perf_hooks';
import { BSON, type Document, MongoBulkWriteError, MongoServerError } from 'mongodb';
import type { CollectionTarget, CommandObserver } from '../collection/collection-command.js';
import type { ClientInternals } from '../connection/client-internals.js';
import { classifyFailure, toCaasDbError } from '../connection/driver-errors.js';
import { runWithRetry } from '../connection/retry-policy.js';
import { ClientClosedError, TenantContextError } from '../errors.js';
import { scopeCommand } from '../scoping/scope-command.js';
import type { Middleware, OperationContext } from './operation.js';

/** The target of an operation, as observers see it. */
export function targetOf(ctx: OperationContext): CollectionTarget {
  return {
    name: ctx.collection?.name ?? '',
    tenantOwned: ctx.collection?.tenantOwned ?? false,
    operation: ctx.operation,
    tenant: ctx.tenant,
  };
}

/**
 * `trace`: shows every operation to the observers once it is over, with the command as the inner
 * layers left it (scoped), its duration and its error, refusals included.
 */
export function tracingLayer(observers: readonly CommandObserver[]): Middleware {
  return {
    name: 'trace',
    phase: 'trace',
    async handle(ctx, next) {
      const started = performance.now();
      let error: unknown;
      try {
        return await next();
      } catch (failure) {
        error = failure;
        throw failure;
      } finally {
        const event = { command: ctx.command, target: targetOf(ctx), durationMS: performance.now() - started };
        for (const observer of observers) observer.observe(error === undefined ? event : { ...event, error });
      }
    },
  };
}

/**
 * `scope`: the one tenant scoper. Rewrites the command for the tenant in scope at every level (see
 * `scopeCommand`), by the ownership of each collection it reaches. With no tenant in scope it
 * leaves the command as it is, unless an outer layer set `ctx.requireTenant` (tenancy): then any
 * tenant-owned part fails closed with `TenantContextError`.
 */
export function scopingLayer(lookupLocalFieldWithPipeline: () => Promise<boolean>): Middleware {
  return {
    name: 'tenant-scope',
    phase: 'scope',
    handle(ctx, next) {
      const scope = (lookupLocalField: boolean) => {
        ctx.command = scopeCommand(ctx.command, {
          collection: ctx.collection,
          tenant: ctx.tenant,
          isTenantOwned: ctx.isTenantOwned,
          lookupLocalFieldWithPipeline: lookupLocalField,
          onUnbound: (path) => {
            if (!ctx.requireTenant) return;
            throw new TenantContextError(
              `${ctx.operation} reaches tenant-owned data (at ${path}) with no tenant bound: use dataLayer.forTenant(tenantId) or runWithTenant(tenantId, fn)`,
            );
          },
        });
        return next();
      };
      // Only pipelines need the server's capabilities; every other command is scoped without an await.
      if (ctx.command.kind === 'aggregate') return lookupLocalFieldWithPipeline().then(scope);
      try {
        return scope(true);
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
}

/**
 * `retry`: re-runs the layers inside it (the `transport` phase and the send) on transient failures,
 * by the operation's declared aspects, never stacked on the driver's own retry:
 * - a failure that proves the command never left (no server selected, the pool cleared before
 *   checkout, the server refused it as not primary) is retried for every operation;
 * - a failure with the command in flight (the connection broke, the pool was cleared under it) is
 *   retried only for operations declared idempotent, and only where the driver does not already
 *   retry them itself (its retryable reads and writes are exactly-once on a replica set);
 * - nothing inside a transaction (the driver's `withTransaction` owns that).
 * An insert re-sent after an uncertain attempt that meets its own `_id` already stored, with the
 * same content, succeeded. The last failure leaves as a typed `CaasDbError`; a write that may have
 * been applied carries `outcome: 'unknown'`.
 */
export function retryLayer(client: ClientInternals): Middleware {
  // Known once a capability probe succeeded (the data layer probes for joins, transactions and
  // tenancy); until then the driver is taken not to retry, which at worst adds one attempt.
  const driverRetriesFor = (access: 'read' | 'write'): boolean => {
    const probed = client.probedCapabilities();
    // The driver retries only where the deployment has sessions (replica sets, sharded clusters).
    if (!probed?.sessions) return false;
    return access === 'read' ? client.driverRetries.reads : client.driverRetries.writes;
  };
  return {
    name: 'retry',
    phase: 'retry',
    handle(ctx, next) {
      let uncertain = false;
      let attempts = 0;
      const failed = async (error: unknown) => {
        if (uncertain && attempts > 1) {
          const own = await alreadyInserted(client, ctx, error);
          if (own !== undefined) return own;
        }
        if (classifyFailure(error) === 'maybe-applied') uncertain = true;
        throw error;
      };
      const attempt = () => {
        attempts += 1;
        return next().catch(failed);
      };
      const translate = (error: unknown): never => {
        const typed = client.closing ? new ClientClosedError({ cause: error }) : toCaasDbError(error, ctx.collection?.name);
        if (ctx.aspects.access === 'write' && (uncertain || classifyFailure(error) === 'maybe-applied')) typed.outcome = 'unknown';
        throw typed;
      };
      if (ctx.session) return attempt().catch(translate);
      const idempotent = ctx.aspects.idempotent && !driverRetriesFor(ctx.aspects.access);
      return runWithRetry(attempt, { name: ctx.operation, idempotent }, client.retry, client.emitRetry).catch(translate);
    },
  };
}

/**
 * After an uncertain attempt, a duplicate `_id` on an insert may be the first attempt's own
 * document: when every duplicate is, byte for byte, the document this insert sent, the insert
 * succeeded. Returns the result the driver would have given, or undefined.
 */
async function alreadyInserted(client: ClientInternals, ctx: OperationContext, error: unknown): Promise<unknown> {
  const { command } = ctx;
  if (command.kind !== 'insertOne' && command.kind !== 'insertMany') return undefined;
  const duplicates = duplicateIdsOf(error);
  if (duplicates === undefined || duplicates.length === 0) return undefined;
  const sent = command.kind === 'insertOne' ? [command.document] : command.documents;
  const byId = new Map(sent.map((document) => [BSON.EJSON.stringify(document._id), document]));
  const name = ctx.collection?.name;
  if (name === undefined) return undefined;
  for (const index of duplicates) {
    const document = command.kind === 'insertOne' ? command.document : command.documents[index];
    if (!document || !byId.has(BSON.EJSON.stringify(document._id))) return undefined;
    const filter = { _id: document._id, ...(document.tenant_id !== undefined && { tenant_id: document.tenant_id }) };
    const stored = await client.attempt((db) =>
      (ctx.database === undefined ? db : db.client.db(ctx.database))
        .collection(name)
        .findOne(filter, ctx.session ? { session: ctx.session } : {}),
    );
    if (!stored || BSON.EJSON.stringify(stored, { relaxed: false }) !== BSON.EJSON.stringify(document, { relaxed: false }))
      return undefined;
  }
  if (command.kind === 'insertOne') return { acknowledged: true, insertedId: command.document._id };
  const bulk = error as MongoBulkWriteError;
  const insertedIds = Object.fromEntries(command.documents.map((document, index) => [index, document._id]));
  // Unordered: the others were inserted; ordered: the first duplicate stopped the batch, so only
  // an all-duplicates tail counts as done.
  if (command.ordered && duplicates.length + (bulk.result?.insertedCount ?? 0) !== command.documents.length) return undefined;
  return { acknowledged: true, insertedCount: command.documents.length, insertedIds };
}

/** Indexes of the documents an insert failed for with a duplicate `_id`, or undefined for any other failure. */
function duplicateIdsOf(error: unknown): number[] | undefined {
  const onId = (failure: { code?: unknown; errmsg?: string; message?: string; keyPattern?: Document }) =>
    failure.code === 11000 && (failure.keyPattern?._id !== undefined || /index: _id_ /.test(failure.errmsg ?? failure.message ?? ''));
  if (error instanceof MongoBulkWriteError) {
    const failures = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
    if (!failures.every((failure) => onId({ code: failure.code, errmsg: failure.errmsg ?? '', keyPattern: failure.err?.keyPattern })))
      return undefined;
    return failures.map((failure) => failure.index);
  }
  if (error instanceof MongoServerError && onId(error)) return [0];
  return undefined;
}
