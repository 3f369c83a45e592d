import { performance } from 'node:perf_hooks';
import type { CollectionTarget, CommandObserver } from '../collection/collection-command.js';
import type { ClientInternals } from '../connection/client-internals.js';
import { toCaasDbError } from '../connection/driver-errors.js';
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
    async handle(ctx, next) {
      const { command } = ctx;
      ctx.command = scopeCommand(command, {
        collection: ctx.collection,
        tenant: ctx.tenant,
        isTenantOwned: ctx.isTenantOwned,
        lookupLocalFieldWithPipeline: command.kind === 'aggregate' ? await lookupLocalFieldWithPipeline() : true,
        onUnbound: (path) => {
          if (!ctx.requireTenant) return;
          throw new TenantContextError(
            `${ctx.operation} reaches tenant-owned data (at ${path}) with no tenant bound: use dataLayer.forTenant(tenantId) or runWithTenant(tenantId, fn)`,
          );
        },
      });
      return next();
    },
  };
}

/**
 * `retry`: re-runs the layers inside it (the `transport` phase and the send) on transient
 * failures, by the operation's declared aspects: a failure that proves the command never reached
 * a server is retried for every operation, one whose outcome is unknown only for `idempotent`
 * ones; nothing is retried inside a transaction (the driver's `withTransaction` owns that). The
 * last failure leaves as a typed `CaasDbError`.
 */
export function retryLayer(client: ClientInternals): Middleware {
  return {
    name: 'retry',
    phase: 'retry',
    async handle(ctx, next) {
      try {
        if (ctx.session) return await next();
        return await runWithRetry(next, { name: ctx.operation, idempotent: ctx.aspects.idempotent }, client.retry, client.emitRetry);
      } catch (error) {
        if (client.closing) throw new ClientClosedError({ cause: error });
        throw toCaasDbError(error, ctx.collection?.name);
      }
    },
  };
}
