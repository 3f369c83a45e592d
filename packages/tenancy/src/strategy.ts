import { createHash } from 'node:crypto';
import { ConfigError, parseInput, type plans, tenantIdSchema } from '@caas-db/core';
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

/** A database prefix: short enough that a hashed tenant database name keeps 180 bits of its hash. */
const DATABASE_PREFIX = /^[a-z][a-z0-9_]{0,15}$/;
const DATABASE_PREFIX_RULE = 'must be 1-16 characters of a-z, 0-9 and _, starting with a letter';

export const strategyOptionsSchema = z.strictObject({
  default: z.enum(['shared', 'database']).optional(),
  databasePerTenantPlans: z.array(z.enum(['free', 'starter', 'pro', 'enterprise'])).optional(),
  databasePrefix: z.string().regex(DATABASE_PREFIX, DATABASE_PREFIX_RULE).optional(),
});

/** MongoDB refuses database names of 64 bytes or more. */
const MAX_DATABASE_NAME = 63;

/**
 * The database of a tenant under the database-per-tenant strategy, one of two forms:
 * - readable, `<prefix>_<tenant id>`, whenever it fits MongoDB's 63 bytes (tenant ids are
 *   lowercase letters, digits, `-` and `_`, all legal in database names);
 * - hashed, `<prefix>__<hex of sha256(tenant id)>`, for longer ids: as many hex digits as fit
 *   (55 with the default prefix, at least 45 = 180 bits with a 16-character prefix).
 *
 * The mapping is injective for a fixed prefix: readable names differ by their id; a tenant id
 * starts with a letter or digit, so the character after `<prefix>_` is `_` in every hashed name
 * and never in a readable one; two hashed names are equal only on a collision of 180+ bits of
 * SHA-256. Distinct tenants therefore never share a database (a per-tenant `dropDatabase` or
 * backup touches one tenant), and every name is lowercase (MongoDB compares names case-insensitively).
 * @throws {ValidationError} when `tenant` is not a valid tenant id.
 * @throws {ConfigError} when `prefix` is not a valid `databasePrefix`.
 */
export function tenantDatabaseName(tenant: string, prefix = 'caas_t'): string {
  parseInput(tenantIdSchema, tenant, 'tenantId');
  if (!DATABASE_PREFIX.test(prefix))
    throw new ConfigError([{ path: 'strategy.databasePrefix', message: DATABASE_PREFIX_RULE, code: 'invalid_format' }]);
  const readable = `${prefix}_${tenant}`;
  if (readable.length <= MAX_DATABASE_NAME) return readable;
  const hashed = `${prefix}__`;
  return (
    hashed +
    createHash('sha256')
      .update(tenant)
      .digest('hex')
      .slice(0, MAX_DATABASE_NAME - hashed.length)
  );
}

/** The strategy of one tenant. */
export function strategyFor(plan: Plan | undefined, options: StrategyOptions): TenancyStrategy {
  if (plan !== undefined && options.databasePerTenantPlans?.includes(plan)) return 'database';
  return options.default ?? 'shared';
}
