import { createHash } from 'node:crypto';
import type { plans } from '@caas-db/core';
import { z } from 'zod';

/** Where a tenant's documents live: shared collections with a `tenant_id` field, or a database of its own. */
export type TenancyStrategy = 'shared' | 'database';

/** Plans of the platform (`clients.plan`). */
export type Plan = (typeof plans)[number];

/** How tenants are placed. */
export interface StrategyOptions {
  /** The strategy of every tenant not covered below. @default 'shared' */
  default?: TenancyStrategy;
  /** Tenants on these plans get a database of their own (e.g. `['enterprise']`). */
  databasePerTenantPlans?: readonly Plan[];
  /** Prefix of tenant database names. @default 'caas_t' */
  databasePrefix?: string;
}

export const strategyOptionsSchema = z.strictObject({
  default: z.enum(['shared', 'database']).optional(),
  databasePerTenantPlans: z.array(z.enum(['free', 'starter', 'pro', 'enterprise'])).optional(),
  databasePrefix: z
    .string()
    .regex(/^[a-z][a-z0-9_]{0,15}$/, 'must be 1-16 characters of a-z, 0-9 and _, starting with a letter')
    .optional(),
});

/** MongoDB refuses database names of 64 bytes or more. */
const MAX_DATABASE_NAME = 63;

/**
 * The database of a tenant under the database-per-tenant strategy: `<prefix>_<tenant id>` (tenant
 * ids are lowercase letters, digits, `-` and `_`, all legal in database names), or, when that would
 * be too long, `<prefix>_h<hash of the tenant id>`, which cannot collide with a readable name.
 */
export function tenantDatabaseName(tenant: string, prefix = 'caas_t'): string {
  const readable = `${prefix}_${tenant}`;
  if (readable.length <= MAX_DATABASE_NAME) return readable;
  return `${prefix}_h${createHash('sha256').update(tenant).digest('hex').slice(0, 32)}`;
}

/** The strategy of one tenant. */
export function strategyFor(plan: Plan | undefined, options: StrategyOptions): TenancyStrategy {
  if (plan !== undefined && options.databasePerTenantPlans?.includes(plan)) return 'database';
  return options.default ?? 'shared';
}
