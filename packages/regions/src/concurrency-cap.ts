import { type Middleware, parseConfig } from '@caas-db/core';
import { z } from 'zod';
import { TenantBusyError } from './errors.js';

/** Options of {@link tenantConcurrencyCap}. */
export interface TenantConcurrencyOptions {
  /** Most operations of one tenant in flight at once on this data layer's client. */
  perTenant: number;
  /**
   * What an operation over the cap does: wait for a slot (`queue`, in arrival order) or fail at
   * once with `TenantBusyError` (`fail-fast`). @default 'queue'
   */
  mode?: 'queue' | 'fail-fast';
  /** In `queue` mode, most operations of one tenant waiting; the next one fails with `TenantBusyError`. @default 1000 */
  maxQueued?: number;
  /** Per-tenant caps that differ from `perTenant` (a large customer's higher cap). */
  overrides?: Record<string, number>;
}

const optionsSchema = z.strictObject({
  perTenant: z.number().int().min(1).max(10_000),
  mode: z.enum(['queue', 'fail-fast']).optional(),
  maxQueued: z.number().int().min(0).max(1_000_000).optional(),
  overrides: z.record(z.string().min(1), z.number().int().min(1).max(10_000)).optional(),
});

interface Slots {
  running: number;
  waiting: Array<() => void>;
}

/** A {@link tenantConcurrencyCap} layer, with its live counts for monitoring. */
export interface TenantConcurrencyCap extends Middleware {
  /** Operations of `tenant` running and waiting now. */
  load(tenant: string): { running: number; waiting: number };
}

/**
 * A `context` layer that caps the operations one tenant has in flight, so a tenant flooding the
 * service cannot take every connection of a shared pool: operations over the cap wait in line (or
 * fail fast) before anything is sent. Operations without a tenant (platform work) are not capped.
 *
 * @example
 * ```ts
 * const data = createDataLayer({ client, middlewares: [tenantConcurrencyCap({ perTenant: 8 })] });
 * ```
 * @throws {ConfigError} when the options are invalid.
 */
export function tenantConcurrencyCap(options: TenantConcurrencyOptions): TenantConcurrencyCap {
  const parsed = parseConfig(optionsSchema, options);
  const mode = parsed.mode ?? 'queue';
  const maxQueued = parsed.maxQueued ?? 1000;
  const overrides = new Map(Object.entries(parsed.overrides ?? {}));
  const byTenant = new Map<string, Slots>();
  const release = (tenant: string, slots: Slots) => {
    const nextInLine = slots.waiting.shift();
    // The slot passes straight to the next in line: running stays the same.
    if (nextInLine) nextInLine();
    else {
      slots.running -= 1;
      if (slots.running === 0) byTenant.delete(tenant);
    }
  };
  return {
    name: 'tenant-concurrency-cap',
    phase: 'context',
    async handle(ctx, next) {
      const tenant = ctx.tenant;
      if (tenant === undefined) return next();
      const limit = overrides.get(tenant) ?? parsed.perTenant;
      let slots = byTenant.get(tenant);
      if (!slots) {
        slots = { running: 0, waiting: [] };
        byTenant.set(tenant, slots);
      }
      if (slots.running < limit) slots.running += 1;
      else if (mode === 'fail-fast') throw new TenantBusyError(tenant, limit, `${ctx.operation} refused (fail-fast)`);
      else if (slots.waiting.length >= maxQueued)
        throw new TenantBusyError(tenant, limit, `${ctx.operation} refused: ${maxQueued} operations already waiting`);
      else await new Promise<void>((resolve) => slots.waiting.push(resolve));
      try {
        return await next();
      } finally {
        release(tenant, slots);
      }
    },
    load(tenant) {
      const slots = byTenant.get(tenant);
      return { running: slots?.running ?? 0, waiting: slots?.waiting.length ?? 0 };
    },
  };
}
