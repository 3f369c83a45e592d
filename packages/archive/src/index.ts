/**
 * @caas-db/archive: the archive format shared by backups, change journals and archive-before-purge.
 * Compressed (gzip), encrypted (AES-256-GCM under a per-archive data key wrapped by your key
 * provider), checksummed (SHA-256 per chunk and per archive) chunks of canonical Extended JSON
 * lines, with a manifest authenticated by a MAC. See README.md.
 */
export { canonicalLine, contentHasher } from './canonical.js';
export {
  ArchiveErrorCodes,
  ArchiveFormatError,
  ArchiveIntegrityError,
  ArchiveKeyError,
  ArchiveNotFoundError,
  ArchiveStateError,
  type IntegrityCheck,
} from './errors.js';
export { createLocalKeyProvider, type KeyProvider, type LocalKeyProviderOptions, type WrappedKey } from './key-provider.js';
export {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  type ArchiveManifest,
  type ChunkEntry,
  manifestSchema,
  type StreamSummary,
} from './manifest.js';
export { assertArchiveName, assertStreamName } from './names.js';
export {
  type ArchiveListing,
  ArchiveReader,
  type ArchiveVerification,
  deleteArchive,
  listArchives,
  type OpenArchiveOptions,
  openArchive,
  type ReadChunk,
} from './reader.js';
export {
  type ArchiveTarget,
  assertObjectKey,
  filesystemTarget,
  memoryObjectStore,
  type ObjectStore,
  objectStorageTarget,
} from './targets.js';
export { ArchiveWriter, type ArchiveWriterOptions, type ArchiveWriterStats, createArchiveWriter } from './writer.js';
