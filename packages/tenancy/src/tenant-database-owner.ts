import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type DataLayer,
  type Document,
  DuplicateKeyError,
  Repository,
  type RepositoryDefinition,
  TenancyViolationError,
  tenantIdSchema,
} from '@caas-db/core';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';

/** The collection of a tenant database that names the tenant it belongs to. */
export const TENANT_DATABASE_OWNER_COLLECTION = 'caas_tenant_owner';

/** The `_id` of the one owner record of a tenant database. */
const OWNER_ID = 'owner';

const ownerSchema = z.strictObject({ tenant_id: tenantIdSchema });

/**
 * The owner record of a tenant database: one document, `{ _id: 'owner', tenant_id }`. Tenant-owned,
 * so its commands are scoped to the tenant and routed to the tenant's database like any other.
 */
export const tenantDatabaseOwnerDefinition: RepositoryDefinition<typeof ownerSchema> = {
  collection: TENANT_DATABASE_OWNER_COLLECTION,
  schema: ownerSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [],
  // The only query is by `_id`, which the `_id` index serves.
  queries: [],
};

/**
 * A tenant's database is owned by another tenant (its `caas_tenant_owner` record names someone
 * else): the tenant's command was refused before anything but the owner check reached that
 * database. The other tenant is not named.
 */
export class TenantDatabaseOwnerError extends TenancyViolationError {
  readonly tenant: string;
  readonly database: string;

  constructor(tenant: string, database: string) {
    super(
      `database ${database}`,
      `Database ${JSON.stringify(database)} belongs to another tenant (${TENANT_DATABASE_OWNER_COLLECTION}), so tenant ${JSON.stringify(tenant)} may not use it; nothing was sent`,
    );
    this.tenant = tenant;
    this.database = database;
  }
}

/** The owner record of the database a tenant-bound repository's commands are routed to. */
export class TenantDatabaseOwnerRepository extends Repository<typeof ownerSchema> {
  /**
   * Claims the database for the bound tenant unless it is claimed already.
   * @param beforeClaim - runs before an unclaimed database is claimed, and may refuse by throwing
   * (the tenant's documents are still elsewhere: see `TenantPlacements`).
   * @returns true when the bound tenant owns it (now or before), false when another tenant does.
   */
  async claim(beforeClaim?: () => Promise<void>): Promise<boolean> {
    const tenant = this.requireTenant('claim');
    if (await this.#ownedByTenant()) return true;
    await beforeClaim?.();
    const now = this.now();
    try {
      // A retry after a lost reply meets our own record as a duplicate: handled below, so idempotent.
      await this.collection.insertOne(
        { name: 'claim', idempotent: true },
        { _id: OWNER_ID, tenant_id: tenant, schema_version: 1, created_at: now, updated_at: now },
      );
      return true;
    } catch (error) {
      if (!(error instanceof DuplicateKeyError)) throw error;
      // Scoped to the tenant, the first read saw no record of its own: either another process of
      // the same tenant claimed it meanwhile, or another tenant's record holds `_id: 'owner'`.
      return this.#ownedByTenant();
    }
  }

  /** True when the bound tenant's owner record is there (nothing is claimed). */
  async owned(): Promise<boolean> {
    this.requireTenant('owned');
    return this.#ownedByTenant();
  }

  async #ownedByTenant(): Promise<boolean> {
    const found = await this.collection.find('owner', { _id: OWNER_ID } as Document, { limit: 1 });
    return found.length > 0;
  }
}

/** Where owner checks are remembered, by `<database>/<tenant>`. */
interface ChecksCache {
  get(key: string): Promise<void> | undefined;
  set(key: string, value: Promise<void>): unknown;
  delete(key: string): boolean;
}

/**
 * Checks, once per process and database (an LRU of 10,000), that a tenant database belongs to the
 * tenant routed to it, claiming an unclaimed one: a database reached by two tenants (another
 * prefix's names, a restore into the wrong name, an older naming scheme) is refused instead of
 * mixing them. The check runs through the data layer's pipeline, as the tenant, on its database.
 */
export class TenantDatabaseOwners {
  readonly #layer: () => DataLayer;
  readonly #verified = new LRUCache<string, Promise<void>>({ max: 10_000 });
  /** Checks made inside a transaction hold only for it (its claim may be rolled back). */
  readonly #verifiedInTransaction = new WeakMap<object, Map<string, Promise<void>>>();
  /** The database the owner check in progress is for, so its own commands go exactly there. */
  readonly #checking = new AsyncLocalStorage<{ tenant: string; database: string }>();
  readonly #beforeClaim: ((tenant: string, database: string) => Promise<void>) | undefined;

  /** @param options.beforeClaim - runs before a tenant claims an unclaimed database; a throw refuses the claim. */
  constructor(layer: () => DataLayer, options: { beforeClaim?: (tenant: string, database: string) => Promise<void> } = {}) {
    this.#layer = layer;
    this.#beforeClaim = options.beforeClaim;
  }

  /** True when `database` holds `tenant`'s owner record (read only: nothing is claimed). */
  claimedBy(tenant: string, database: string): Promise<boolean> {
    const owners = this.#layer().repository(tenantDatabaseOwnerDefinition, TenantDatabaseOwnerRepository, tenant);
    return this.#checking.run({ tenant, database }, () => owners.owned());
  }

  /** Forgets that `database` was found to be `tenant`'s: the next command checks (or claims) again. */
  forget(tenant: string, database: string): void {
    this.#verified.delete(`${database}/${tenant}`);
  }

  /**
   * The database of an owner-check command of `tenant` (on {@link TENANT_DATABASE_OWNER_COLLECTION}),
   * or undefined when the current command is not one.
   */
  checkedDatabase(collection: string, tenant: string): string | undefined {
    const checking = this.#checking.getStore();
    return collection === TENANT_DATABASE_OWNER_COLLECTION && checking?.tenant === tenant ? checking.database : undefined;
  }

  /**
   * Resolves when `database` belongs to `tenant` (claiming it if unclaimed).
   * @param session - the transaction the command runs in, if any.
   * @throws {TenantDatabaseOwnerError} when another tenant owns it.
   */
  verify(tenant: string, database: string, session: object | undefined): Promise<void> {
    const key = `${database}/${tenant}`;
    const known = this.#verified.get(key);
    if (known) return known;
    let cache: ChecksCache = this.#verified;
    if (session) {
      const ofTransaction = this.#verifiedInTransaction.get(session) ?? new Map<string, Promise<void>>();
      this.#verifiedInTransaction.set(session, ofTransaction);
      cache = ofTransaction;
    }
    let pending = cache.get(key);
    if (!pending) {
      const check = this.#check(tenant, database);
      pending = check.catch((error: unknown) => {
        // Refusals and failures are not remembered: the next command checks again.
        if (cache.get(key) === pending) cache.delete(key);
        throw error;
      });
      cache.set(key, pending);
    }
    return pending;
  }

  async #check(tenant: string, database: string): Promise<void> {
    const owners = this.#layer().repository(tenantDatabaseOwnerDefinition, TenantDatabaseOwnerRepository, tenant);
    const beforeClaim = this.#beforeClaim;
    const owned = await this.#checking.run({ tenant, database }, () => owners.claim(beforeClaim && (() => beforeClaim(tenant, database))));
    if (!owned) throw new TenantDatabaseOwnerError(tenant, database);
  }
}
