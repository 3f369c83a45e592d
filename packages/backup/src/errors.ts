import { CaasDbError } from '@caas-db/core';

/** Stable codes of the backup package's errors. */
export const BackupErrorCodes = {
  RESTORE_VERIFICATION: 'E_RESTORE_VERIFICATION',
  JOURNAL_GAP: 'E_JOURNAL_GAP',
  BACKUP_NOT_FOUND: 'E_BACKUP_NOT_FOUND',
  PRE_IMAGES_REQUIRED: 'E_BACKUP_PRE_IMAGES_REQUIRED',
  ID_REMAP: 'E_BACKUP_ID_REMAP',
} as const;

/** One difference a restore verification found. */
export interface RestoreMismatch {
  readonly collection: string;
  /** `count`, `content` (a document differs or is missing), `schema` or `invariant`. */
  readonly kind: 'count' | 'content' | 'schema' | 'invariant';
  readonly detail: string;
}

/** After a restore, the database does not hold what the backup holds (or breaks the model). */
export class RestoreVerificationError extends CaasDbError {
  readonly code = BackupErrorCodes.RESTORE_VERIFICATION;
  /** Every difference found (at most 100). */
  readonly mismatches: readonly RestoreMismatch[];

  constructor(mismatches: readonly RestoreMismatch[]) {
    super(
      `Restore verification failed: ${mismatches
        .slice(0, 5)
        .map((mismatch) => `${mismatch.collection} ${mismatch.kind}: ${mismatch.detail}`)
        .join('; ')}${mismatches.length > 5 ? ` (+${mismatches.length - 5} more)` : ''}`,
    );
    this.mismatches = mismatches;
  }
}

/**
 * The journal cannot bring a tenant to the requested moment: its events do not follow on from the
 * backup or from each other (the change stream's history was lost, the journal was stopped too
 * long, or the server gave events that name no document). Take a new full backup.
 */
export class JournalGapError extends CaasDbError {
  readonly code = BackupErrorCodes.JOURNAL_GAP;
  readonly tenant: string;

  constructor(tenant: string, detail: string, options: { cause?: unknown } = {}) {
    super(`Journal of tenant ${JSON.stringify(tenant)} has a gap: ${detail}`, options);
    this.tenant = tenant;
  }
}

/** No backup of the tenant matches (by name, or before the requested time). */
export class BackupNotFoundError extends CaasDbError {
  readonly code = BackupErrorCodes.BACKUP_NOT_FOUND;
}

/**
 * A journal of a tenant in shared collections needs change-stream pre-images on them: a delete
 * event carries only the document's `_id`, which names no tenant, so without the pre-image's
 * `tenant_id` the server cannot give the journal its tenant's deletes without everyone else's, and a
 * journal that missed deletes would bring deleted documents back on point-in-time recovery. Enable
 * them with `backups.enablePreImages()` (MongoDB 6.0+), or use database-per-tenant.
 */
export class PreImagesRequiredError extends CaasDbError {
  readonly code = BackupErrorCodes.PRE_IMAGES_REQUIRED;
  readonly tenant: string;
  /** The collections without pre-images. */
  readonly collections: readonly string[];

  constructor(tenant: string, collections: readonly string[]) {
    super(
      `The journal of tenant ${JSON.stringify(tenant)} cannot tell its deletes from other tenants' in shared collections without change-stream pre-images (${collections.join(', ')}): enable them with backups.enablePreImages() (MongoDB 6.0+), or use database-per-tenant`,
    );
    this.tenant = tenant;
    this.collections = collections;
  }
}
