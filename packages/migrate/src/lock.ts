import { type DataLayer, DuplicateKeyError, type ObjectId, Repository, type RepositoryDefinition } from '@caas-db/core';
import { z } from 'zod';
import { MigrationLockedError, MigrationLockLostError } from './errors.js';

/** The fields of a `caas_migration_locks` document: one named lease. */
export const migrationLockSchema = z.strictObject({
  name: z.string().min(1).max(128),
  holder: z.string().min(1).max(512),
  acquired_at: z.date(),
  /** The lease: past this instant any runner may take the lock over (its holder crashed). */
  expires_at: z.date(),
});

/** The definition of `caas_migration_locks` (a platform collection). */
export const migrationLocksDefinition: RepositoryDefinition<typeof migrationLockSchema> = {
  collection: 'caas_migration_locks',
  schema: migrationLockSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [{ name: 'name', key: { name: 1 }, unique: true, purpose: 'one document per lock' }],
  queries: [{ name: 'lock by name', equality: ['name'] }],
};

/**
 * A lease lock in MongoDB: one document per lock name, created by the first runner (a unique index
 * makes a concurrent second creation fail) and taken over by another only once its `expires_at`
 * passed, in one atomic conditional update. The holder renews the lease while it works; a crashed
 * holder's lease simply runs out. Runners compare their own clocks with `expires_at`, so clocks
 * should agree to well within the lease (NTP).
 */
export class MigrationLock {
  readonly #locks: Repository<typeof migrationLockSchema>;
  readonly #name: string;
  readonly #holder: string;
  readonly #leaseMS: number;
  readonly #now: () => Date;
  #id: ObjectId | undefined;
  #lost = false;

  constructor(data: DataLayer, options: { name: string; holder: string; leaseMS: number; now?: () => Date }) {
    this.#locks = data.repository(migrationLocksDefinition, Repository);
    this.#name = options.name;
    this.#holder = options.holder;
    this.#leaseMS = options.leaseMS;
    this.#now = options.now ?? (() => new Date());
  }

  /** Creates the lock collection's unique index (idempotent). */
  async prepare(): Promise<void> {
    await this.#locks.syncIndexes();
  }

  /**
   * Takes the lock, or throws.
   * @throws {MigrationLockedError} when another runner holds an unexpired lease.
   */
  async acquire(): Promise<void> {
    const now = this.#now();
    const lease = { holder: this.#holder, acquired_at: now, expires_at: new Date(now.getTime() + this.#leaseMS) };
    try {
      const created = await this.#locks.create({ name: this.#name, ...lease });
      this.#id = created._id;
      this.#lost = false;
      return;
    } catch (error) {
      if (!(error instanceof DuplicateKeyError)) throw error;
    }
    // Exists: take it over only if its lease ran out (or it is our own), atomically.
    const taken = await this.#locks.findOneAndUpdate(
      { name: this.#name, $or: [{ expires_at: { $lt: now } }, { holder: this.#holder }] },
      { $set: lease },
    );
    if (taken) {
      this.#id = taken._id;
      this.#lost = false;
      return;
    }
    const current = await this.#locks.findOne({ name: this.#name });
    throw new MigrationLockedError(current?.holder ?? 'another runner', current?.expires_at ?? now);
  }

  /**
   * Extends the lease from now.
   * @throws {MigrationLockLostError} when another runner took the lock over (this lease expired).
   */
  async renew(): Promise<void> {
    if (this.#lost) throw this.#lostError();
    const now = this.#now();
    const renewed = await this.#locks.findOneAndUpdate(
      { name: this.#name, holder: this.#holder },
      { $set: { expires_at: new Date(now.getTime() + this.#leaseMS) } },
    );
    if (!renewed) {
      this.#lost = true;
      throw this.#lostError();
    }
  }

  /** True once a renewal found the lock taken by another runner. */
  get lost(): boolean {
    return this.#lost;
  }

  /** Gives the lock up (its lease ends now); does nothing when another runner holds it. */
  async release(): Promise<void> {
    if (!this.#id) return;
    await this.#locks.findOneAndUpdate({ name: this.#name, holder: this.#holder }, { $set: { expires_at: new Date(0) } });
    this.#id = undefined;
  }

  #lostError(): MigrationLockLostError {
    return new MigrationLockLostError(`Lock ${this.#name} was taken over by another runner after the lease of ${this.#holder} expired`);
  }
}
