import { performance } from 'node:perf_hooks';
import type { ClientSession } from 'mongodb';
import { z } from 'zod';
import { TimeoutError } from '../errors.js';
import type { Middleware, OperationContext } from '../pipeline/operation.js';
import { parseConfig } from '../validation-issues.js';

/** Options of {@link timeBudget}: the time one operation may take, retries included, by class. */
export interface TimeBudgetOptions {
  /** Reads (`find`, `count`, `aggregate`, ...). @default 10000 */
  readMS?: number;
  /** Writes. @default 10000 */
  writeMS?: number;
  /** Admin commands (indexes, collections, server commands). @default 60000 */
  adminMS?: number;
  /** Budgets of named operations (`messages.searchMessages`), over their class's. */
  operations?: Record<string, number>;
}

/** The budgets {@link timeBudget} uses for what its options leave out. */
export const timeBudgetDefaults = { readMS: 10_000, writeMS: 10_000, adminMS: 60_000 } as const;

const budget = z.number().int().min(1).max(3_600_000);
const optionsSchema = z.strictObject({
  readMS: budget.optional(),
  writeMS: budget.optional(),
  adminMS: budget.optional(),
  operations: z.record(z.string().min(1), budget).optional(),
});

/**
 * A `context` layer giving every operation a time budget. Its deadline covers every attempt
 * (retries included): each attempt hands the server what is left as `maxTimeMS` (every data
 * command carries it), an attempt that would start past the deadline is not sent, and the layer
 * stops waiting at the deadline whatever the driver is doing (server selection, a pool checkout).
 * The driver's own client-side operation timeout (`timeoutMS`) is a no-op in driver 7, so the
 * client-side bound is this layer's. An operation out of time fails with `TimeoutError`
 * (`E_TIMEOUT`); a write that timed out after it was sent carries `outcome: 'unknown'`. Operations
 * inside a transaction keep the transaction's own limits.
 *
 * @example
 * ```ts
 * const data = createDataLayer({ client, middlewares: [timeBudget({ readMS: 2_000, operations: { 'messages.searchMessages': 5_000 } })] });
 * ```
 * @throws {ConfigError} when the options are invalid.
 */
export function timeBudget(options: TimeBudgetOptions = {}): Middleware {
  const parsed = parseConfig(optionsSchema, options);
  const readMS = parsed.readMS ?? timeBudgetDefaults.readMS;
  const writeMS = parsed.writeMS ?? timeBudgetDefaults.writeMS;
  const adminMS = parsed.adminMS ?? timeBudgetDefaults.adminMS;
  const named = new Map(Object.entries(parsed.operations ?? {}));
  return {
    name: 'time-budget',
    phase: 'context',
    handle(ctx, next) {
      if (ctx.session) return next();
      const ms = named.get(ctx.operation) ?? (ctx.aspects.admin ? adminMS : ctx.aspects.access === 'read' ? readMS : writeMS);
      ctx.deadline = performance.now() + ms;
      const running = next();
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new TimeoutError(`${ctx.operation} exceeded its time budget of ${ms} ms`);
          if (ctx.sent && ctx.aspects.access === 'write') error.outcome = 'unknown';
          // The abandoned attempt settles on its own; its outcome is what `outcome` describes.
          running.catch(() => undefined);
          reject(error);
        }, ms);
      });
      return Promise.race([running, expired]).finally(() => clearTimeout(timer));
    },
  };
}

/**
 * The options every driver call of an attempt carries: the transaction's session, and the time left
 * of the operation's budget as the server's `maxTimeMS` when it has one. Without a budget this is
 * the session alone.
 * @throws {TimeoutError} when the budget is spent before the attempt starts (nothing is sent).
 */
export function attemptOptions(ctx: OperationContext): { session?: ClientSession; maxTimeMS?: number } {
  const { deadline } = ctx;
  if (deadline === undefined) return ctx.session ? { session: ctx.session } : {};
  const left = Math.floor(deadline - performance.now());
  if (left <= 0) throw new TimeoutError(`${ctx.operation} ran out of its time budget before an attempt could start`);
  return ctx.session ? { session: ctx.session, maxTimeMS: left } : { maxTimeMS: left };
}
