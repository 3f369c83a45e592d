/**
 * @caas-db/migrate: versioned migration files with a lease lock, per-tenant runs and resumable
 * batched document migrations. See docs/migrations.md.
 */
export { discoverMigrations, loadMigration, type MigrationFile, migrationFileName, migrationTemplate } from './discover.js';
export {
  MigrationErrorCodes,
  MigrationFailedError,
  MigrationInterruptedError,
  MigrationInvalidError,
  MigrationLockedError,
  MigrationLockLostError,
  MigrationLockTimeoutError,
} from './errors.js';
export { MigrationLock, migrationLockSchema, migrationLocksDefinition } from './lock.js';
export {
  type BatchResult,
  defineMigration,
  type Migration,
  type MigrationContext,
  type UpgradableRepository,
} from './migration.js';
export {
  createMigrator,
  type MigrationEvent,
  type MigrationState,
  type MigrationStatus,
  type Migrator,
  type MigratorOptions,
  type RunOptions,
  type RunReport,
} from './migrator.js';
export {
  checkpointSchema,
  type MigrationRecord,
  MigrationRecordRepository,
  migrationRecordSchema,
  migrationRecordsDefinition,
  recordStatuses,
  type StepCheckpoint,
} from './records.js';
export {
  type Drift,
  type DriftKind,
  driftKinds,
  type RollupVerifier,
  type TenantVerification,
  type UsageVerifier,
  type VerifyOptions,
  verifyTenants,
} from './verify.js';
