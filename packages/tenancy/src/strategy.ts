import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import {
  CaasDbError,
  ConfigError,
  type DataLayer,
  parseInput,
  type plans,
  Repository,
  type RepositoryDefinition,
  tenantIdSchema,
} from '@caas-db/core';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { TENANT_DATABASE_OWNER_COLLECTION, TenantDatabaseOwners } from './tenant-database-owner.js';

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

/** True when some tenants may get a database of their own: only then can a tenant's placement change. */
export function usesDatabaseStrategy(options: StrategyOptions): boolean {
  return options.default === 'database' || (options.databasePerTenantPlans?.length ?? 0) > 0;
}

/**
 * A tenant's strategy now chooses another database than the one its documents are in (its plan
 * moved it between shared collections and a database of its own, or back). Its commands are refused
 * until its documents are moved: served from the chosen database they would read back as missing.
 * Nothing was sent to the chosen database, and nothing was claimed there.
 */
export class TenantMoveRequiredError extends CaasDbError {
  readonly code = 'E_TENANT_MOVE_REQUIRED';
  readonly tenant: string;
  /** The database the tenant's documents are in. */
  readonly placedIn: string;
  /** The database its strategy chooses now. */
  readonly chosen: string;

  constructor(tenant: string, placedIn: string, chosen: string) {
    super(
      `Tenant ${JSON.stringify(tenant)} has its documents in database ${JSON.stringify(placedIn)}, but its strategy now places it in ${JSON.stringify(chosen)}: move its documents first (docs/multi-tenancy.md, "Moving a tenant"); nothing was sent`,
    );
    this.tenant = tenant;
    this.placedIn = placedIn;
    this.chosen = chosen;
  }
}

/** A tenant-owned collection seen only as "does this tenant have any document here?". */
function probeDefinition(collection: string): RepositoryDefinition<z.ZodObject> {
  return { collection, schema: z.strictObject({}), tenantOwned: true, schemaVersion: 1, indexes: [], queries: [] };
}

/** Answers whether the bound tenant has any document in its collection (of the database it is routed to). */
class PlacementProbe extends Repository<z.ZodObject> {
  async holdsAny(): Promise<boolean> {
    // An aggregate, so that every collection answers it alike: the scoper puts the tenant's
    // `$match` first, which the `tenant_id` prefix of every tenant collection's indexes serves.
    const found = await this.collection.aggregate('placementProbe', [{ $limit: 1 }, { $project: { _id: 1 } }]);
    return found.length > 0;
  }
}

/**
 * Where each tenant's documents are, checked before its commands are routed: a tenant database is
 * the tenant's once it holds the tenant's owner record (`caas_tenant_owner`), and a tenant with
 * documents in the shared database has them there. A command for a tenant whose strategy chooses
 * another database than the one its documents are in fails with {@link TenantMoveRequiredError}:
 * - routed to its own database, which it has not claimed yet: the claim first checks the shared
 *   database (one `$limit: 1` read per tenant-owned collection, once per tenant) and is refused
 *   when the tenant has documents there;
 * - routed to the shared database (only where some plan or the default uses the database
 *   strategy): its own database must not hold its owner record (one read per tenant and process).
 * What was found is remembered per process while the tenant's chosen database stays the same
 * (refusals are not remembered); inside a transaction, for that transaction only.
 */
export class TenantPlacements {
  readonly #layer: () => DataLayer;
  readonly #options: StrategyOptions;
  /** The owner checks (and claims) of tenant databases. */
  readonly owners: TenantDatabaseOwners;
  /** The placement probe in progress, by tenant: its commands read the shared database. */
  readonly #probing = new AsyncLocalStorage<string>();
  /** Tenants found to have no documents in a database of their own, while routed to the shared one. */
  readonly #sharedVerified = new LRUCache<string, Promise<void>>({ max: 10_000 });
  readonly #sharedVerifiedInTransaction = new WeakMap<object, Map<string, Promise<void>>>();
  /** The database each tenant was last routed to (`''` for the shared one): a change drops what was remembered. */
  readonly #chosen = new LRUCache<string, string>({ max: 10_000 });

  constructor(layer: () => DataLayer, options: StrategyOptions) {
    this.#layer = layer;
    this.#options = options;
    this.owners = new TenantDatabaseOwners(layer, { beforeClaim: (tenant, database) => this.#refuseIfShared(tenant, database) });
  }

  /** True while a placement probe of `tenant` runs: route its commands to the shared database, unchecked. */
  probing(tenant: string): boolean {
    return this.#probing.getStore() === tenant;
  }

  /**
   * Resolves when `tenant`'s documents are where it is routed: `database`, or the shared database
   * when undefined (claiming its own database if it is new there).
   * @param session - the transaction the command runs in, if any.
   * @throws {TenantMoveRequiredError} when its documents are in the other one.
   * @throws {TenantDatabaseOwnerError} when another tenant owns `database`.
   */
  verify(tenant: string, database: string | undefined, session: object | undefined): Promise<void> {
    const chosen = database ?? '';
    if (this.#chosen.get(tenant) !== chosen) {
      // First seen, or its plan moved it: what was found before may no longer hold.
      this.#sharedVerified.delete(tenant);
      this.owners.forget(tenant, tenantDatabaseName(tenant, this.#options.databasePrefix));
      this.#chosen.set(tenant, chosen);
    }
    if (database !== undefined) return this.owners.verify(tenant, database, session);
    if (!usesDatabaseStrategy(this.#options)) return Promise.resolve();
    return this.#verifyShared(tenant, session);
  }

  #verifyShared(tenant: string, session: object | undefined): Promise<void> {
    const known = this.#sharedVerified.get(tenant);
    if (known) return known;
    let cache: {
      get(key: string): Promise<void> | undefined;
      set(key: string, value: Promise<void>): unknown;
      delete(key: string): boolean;
    } = this.#sharedVerified;
    if (session) {
      const ofTransaction = this.#sharedVerifiedInTransaction.get(session) ?? new Map<string, Promise<void>>();
      this.#sharedVerifiedInTransaction.set(session, ofTransaction);
      cache = ofTransaction;
    }
    let pending = cache.get(tenant);
    if (!pending) {
      const own = tenantDatabaseName(tenant, this.#options.databasePrefix);
      const check = this.owners.claimedBy(tenant, own).then((placedInOwn) => {
        if (placedInOwn) throw new TenantMoveRequiredError(tenant, own, this.#layer().client.databaseName);
      });
      pending = check.catch((error: unknown) => {
        if (cache.get(tenant) === pending) cache.delete(tenant);
        throw error;
      });
      cache.set(tenant, pending);
    }
    return pending;
  }

  /** Before `tenant` claims `database`: refused when the tenant has documents in the shared database. */
  async #refuseIfShared(tenant: string, database: string): Promise<void> {
    const layer = this.#layer();
    const collections = [...layer.tenantOwnedCollections()].filter((name) => name !== TENANT_DATABASE_OWNER_COLLECTION);
    const found = await this.#probing.run(tenant, () =>
      Promise.all(collections.map((name) => layer.repository(probeDefinition(name), PlacementProbe, tenant).holdsAny())),
    );
    if (found.some(Boolean)) throw new TenantMoveRequiredError(tenant, layer.client.databaseName, database);
  }
}
