import { CaasDbError } from '@caas-db/core';

/** Stable codes of the migration errors. */
export const MigrationErrorCodes = {
  LOCKED: 'E_MIGRATION_LOCKED',
  LOCK_LOST: 'E_MIGRATION_LOCK_LOST',
  LOCK_TIMEOUT: 'E_MIGRATION_LOCK_TIMEOUT',
  INTERRUPTED: 'E_MIGRATION_INTERRUPTED',
  FAILED: 'E_MIGRATION_FAILED',
  INVALID: 'E_MIGRATION_INVALID',
} as const;

/** Another runner holds the migration lock and its lease has not expired. Nothing ran. */
export class MigrationLockedError extends CaasDbError {
  readonly code = MigrationErrorCodes.LOCKED;
  /** Who holds the lock. */
  readonly holder: string;
  /** When the holder's lease expires unless it renews it. */
  readonly expiresAt: Date;

  constructor(holder: string, expiresAt: Date) {
    super(`Migrations are locked by ${holder} until ${expiresAt.toISOString()} (the lease expires if that runner crashed)`);
    this.holder = holder;
    this.expiresAt = expiresAt;
  }
}

/**
 * A run that was told to wait for the migration lock (`wait`) did not get it in time: another
 * runner held it throughout. Nothing ran.
 */
export class MigrationLockTimeoutError extends CaasDbError {
  readonly code = MigrationErrorCodes.LOCK_TIMEOUT;
  /** Who held the lock when the wait ended. */
  readonly holder: string;
  /** How long this runner waited, in milliseconds. */
  readonly waitedMS: number;

  constructor(holder: string, waitedMS: number) {
    super(`Waited ${waitedMS} ms for the migration lock; ${holder} still holds it. Nothing ran`);
    this.holder = holder;
    this.waitedMS = waitedMS;
  }
}

/** This runner's lease expired and another runner took the lock: it stopped at a batch boundary. */
export class MigrationLockLostError extends CaasDbError {
  readonly code = MigrationErrorCodes.LOCK_LOST;
}

/**
 * A run was stopped (its signal aborted) at a batch boundary. Every finished batch is recorded in
 * its checkpoint: run `up` again to resume after it.
 */
export class MigrationInterruptedError extends CaasDbError {
  readonly code = MigrationErrorCodes.INTERRUPTED;
  /** The migration that was running. */
  readonly migration: string;
  /** The tenant it was running for, if any. */
  readonly tenant: string | undefined;

  constructor(migration: string, tenant: string | undefined) {
    super(`Migration ${migration}${tenant ? ` (tenant ${tenant})` : ''} stopped at a batch boundary; run migrate up again to resume`);
    this.migration = migration;
    this.tenant = tenant;
  }
}

/** A migration's `up` or `down` threw; the cause is attached and the record says `failed`. */
export class MigrationFailedError extends CaasDbError {
  readonly code = MigrationErrorCodes.FAILED;
  readonly migration: string;
  readonly tenant: string | undefined;

  constructor(migration: string, tenant: string | undefined, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`Migration ${migration}${tenant ? ` (tenant ${tenant})` : ''} failed: ${reason}`, { cause });
    this.migration = migration;
    this.tenant = tenant;
  }
}

/** A migration file or folder is unusable (no `up`, bad name, missing folder). Nothing ran. */
export class MigrationInvalidError extends CaasDbError {
  readonly code = MigrationErrorCodes.INVALID;
}
