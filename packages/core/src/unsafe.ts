/**
 * @caas-db/core/unsafe: the driver underneath a data client, for what caas-db does not wrap.
 *
 * **Everything here is unscoped.** Commands sent through these objects pass no layer of the data
 * layer's pipeline: no tenant scoping, no quotas, no cache invalidation, no retry, no typed errors,
 * no tracing. The isolation auditor of `@caas-db/tenancy` still sees them on the wire and reports
 * (`isolation:violation`) any that reach a tenant-owned collection unscoped. Prefer the typed admin
 * commands (`dataLayer.admin`, `repository.syncIndexes()`, `explain()`) and repositories of your
 * own (`dataLayer.repository(...)`).
 */
import type { Db, MongoClient } from 'mongodb';
import { internalsOf } from './connection/client-internals.js';
import type { DataClient } from './connection/data-client.js';

/**
 * The driver's `MongoClient` of a data client. Unscoped: see the module documentation.
 * @throws {TypeError} when `client` was not made by `createDataClient`.
 */
export function unsafeDriver(client: DataClient): MongoClient {
  return internalsOf(client).driver;
}

/**
 * The driver's `Db` of the client's configured database (or of `database`). Unscoped: see the
 * module documentation.
 */
export function unsafeDatabase(client: DataClient, database?: string): Db {
  const internals = internalsOf(client);
  return database === undefined ? internals.db : internals.driver.db(database);
}

/**
 * The grant of a tenant relocation between clusters (used by `@caas-db/regions`): operations
 * declared with it may insert documents verbatim (guarded fields included) and delete them, even
 * from append-only collections. Updates stay checked. Hold it only in code that copies a tenant's
 * documents to another cluster and removes the old copies.
 */
export { isRelocation, relocationGrant } from './sharding/relocation-grant.js';
