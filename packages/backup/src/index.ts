/**
 * @caas-db/backup: per-tenant backup and recovery. Encrypted logical backups in the
 * `@caas-db/archive` format, verified full and partial restores (same tenant, another tenant,
 * another database or cluster), a change-stream journal per tenant and point-in-time recovery.
 * See docs/backup-recovery.md.
 */
export { BACKUP_LAYOUT_VERSION, type BackupMetadata, type BackupResult, CHANGES_STREAM, LIBRARY_VERSION } from './backup.js';
export { type CapturedChange, type CaptureIsolation, capturePipeline, TenantChangeCapture } from './change-capture.js';
export {
  BackupErrorCodes,
  BackupNotFoundError,
  JournalGapError,
  PreImagesRequiredError,
  type RestoreMismatch,
  RestoreVerificationError,
} from './errors.js';
export { createIdRemap, type IdMode, type IdRemap } from './id-remap.js';
export { captureIsolationOf, enablePreImages, type IsolationReport } from './isolation.js';
export { JOURNAL_STREAM, type JournalEvents, type JournalSegmentMetadata, TenantJournal } from './journal.js';
export { defaultCollections } from './model.js';
export type { PointInTime, PointInTimeResult } from './pitr.js';
export type { RestoreMode, RestoreResult, RestoreVerification } from './restore.js';
export { rewriteTenant } from './rewrite.js';
export type { RestoreSelection } from './selection.js';
export { type BackupService, type BackupServiceOptions, createBackupService, type RestoreOptions } from './service.js';
export type { BackupVerification } from './verify-backup.js';
