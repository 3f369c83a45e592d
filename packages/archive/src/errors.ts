import { CaasDbError } from '@caas-db/core';

/** Stable codes of the archive package's errors. */
export const ArchiveErrorCodes = {
  INTEGRITY: 'E_ARCHIVE_INTEGRITY',
  NOT_FOUND: 'E_ARCHIVE_NOT_FOUND',
  KEY: 'E_ARCHIVE_KEY',
  FORMAT: 'E_ARCHIVE_FORMAT',
  STATE: 'E_ARCHIVE_STATE',
} as const;

/** Which check of an archive failed. */
export type IntegrityCheck =
  | 'manifest-mac'
  | 'manifest-syntax'
  | 'key-unwrap'
  | 'chunk-missing'
  | 'chunk-sha256'
  | 'chunk-decrypt'
  | 'chunk-decompress'
  | 'chunk-syntax'
  | 'chunk-count'
  | 'stream-count'
  | 'stream-sha256'
  | 'archive-sha256';

/**
 * An archive was altered, truncated or damaged after it was written: an object's bytes differ from
 * what the authenticated manifest records, or fail authenticated decryption. Nothing read from it
 * should be trusted; readers throw this before yielding any document of a damaged chunk.
 */
export class ArchiveIntegrityError extends CaasDbError {
  readonly code = ArchiveErrorCodes.INTEGRITY;
  /** The object that failed (`<archive>/manifest.json`, `<archive>/messages/000003.chunk`). */
  readonly object: string;
  /** Which check failed. */
  readonly check: IntegrityCheck;

  constructor(object: string, check: IntegrityCheck, detail: string, options: { cause?: unknown } = {}) {
    super(`Archive object ${object} failed its ${check} check: ${detail}`, options);
    this.object = object;
    this.check = check;
  }
}

/** No archive (or no object of one) exists under the given name. */
export class ArchiveNotFoundError extends CaasDbError {
  readonly code = ArchiveErrorCodes.NOT_FOUND;
  /** The object or archive name that is missing. */
  readonly object: string;

  constructor(object: string, options: { cause?: unknown } = {}) {
    super(`No archive object ${object}`, options);
    this.object = object;
  }
}

/** The key provider does not hold the key an archive's data key was wrapped with (or refused to use it). */
export class ArchiveKeyError extends CaasDbError {
  readonly code = ArchiveErrorCodes.KEY;
  /** The key id the archive names. */
  readonly keyId: string;

  constructor(keyId: string, detail: string, options: { cause?: unknown } = {}) {
    super(`Key ${JSON.stringify(keyId)}: ${detail}`, options);
    this.keyId = keyId;
  }
}

/** The archive was written in a format version this library does not read. */
export class ArchiveFormatError extends CaasDbError {
  readonly code = ArchiveErrorCodes.FORMAT;
}

/** A writer was used after `finish()` or `abort()`, or an archive name is already taken. */
export class ArchiveStateError extends CaasDbError {
  readonly code = ArchiveErrorCodes.STATE;
}
