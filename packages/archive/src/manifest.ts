import { z } from 'zod';

/** The format identifier and version written into every manifest. */
export const ARCHIVE_FORMAT = 'caas-db-archive';
/** The manifest format version this library writes and reads. */
export const ARCHIVE_FORMAT_VERSION = 1;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** One stored chunk: a bounded run of one stream's documents, sealed. */
export const chunkEntrySchema = z.strictObject({
  /** The stream (e.g. a collection name) the chunk belongs to. */
  stream: z.string(),
  /** Position of the chunk within its stream, from 0. */
  seq: z.number().int().min(0),
  /** Object key of the chunk in the target. */
  key: z.string(),
  /** Documents in the chunk. */
  count: z.number().int().min(0),
  /** Bytes of the EJSON lines before compression. */
  plainBytes: z.number().int().min(0),
  /** Bytes stored (compressed, encrypted, framed). */
  storedBytes: z.number().int().min(0),
  /** SHA-256 of the stored bytes. */
  sha256: hex64,
});

/** What one stream holds. */
export const streamSummarySchema = z.strictObject({
  /** Documents in the stream. */
  count: z.number().int().min(0),
  /** Bytes of its EJSON lines (uncompressed). */
  plainBytes: z.number().int().min(0),
  /** Number of chunks. */
  chunks: z.number().int().min(0),
  /** SHA-256 of the stream's EJSON lines in order (each line followed by `\n`): its content hash. */
  contentSha256: hex64,
});

/** The manifest: everything needed to read, check and decrypt an archive, authenticated by a MAC. */
export const manifestSchema = z.strictObject({
  format: z.literal(ARCHIVE_FORMAT),
  version: z.number().int(),
  /** The archive's name: the key prefix of its objects. */
  name: z.string(),
  /** Random id of this archive (binds chunks and the wrapped key to it). */
  id: z.string().uuid(),
  /** What the archive is, chosen by its writer (`backup`, `journal`, `lifecycle`). */
  kind: z.string(),
  createdAt: z.string(),
  finishedAt: z.string(),
  encryption: z.strictObject({
    algorithm: z.literal('AES-256-GCM'),
    /** Id of the key encryption key that wrapped the data key (the key provider's). */
    keyId: z.string(),
    /** The wrapped data key, base64. */
    wrappedKey: z.string(),
  }),
  compression: z.literal('gzip'),
  /** Documents are canonical Extended JSON v2, one per line. */
  encoding: z.literal('ejson-canonical-lines'),
  /** Streams in the order they were first written. */
  streams: z.record(z.string(), streamSummarySchema),
  /** Every chunk, in the order written. */
  chunks: z.array(chunkEntrySchema),
  /** SHA-256 over the stored bytes of every chunk, in `chunks` order: the whole archive's hash. */
  sha256: hex64,
  /** The writer's own facts (tenant, consistency point, versions). JSON values only. */
  metadata: z.record(z.string(), z.unknown()),
});

/** One chunk of an archive's manifest. */
export type ChunkEntry = z.infer<typeof chunkEntrySchema>;
/** One stream of an archive's manifest. */
export type StreamSummary = z.infer<typeof streamSummarySchema>;
/** An archive's manifest (authenticated when read through `openArchive`). */
export type ArchiveManifest = z.infer<typeof manifestSchema>;

/** Object key of an archive's manifest. */
export function manifestKey(name: string): string {
  return `${name}/manifest.json`;
}

/** Object key of an archive's manifest MAC. */
export function macKey(name: string): string {
  return `${name}/manifest.mac`;
}

/** Object key of a chunk. */
export function chunkKey(name: string, stream: string, seq: number): string {
  return `${name}/${stream}/${String(seq).padStart(6, '0')}.chunk`;
}

/** Associated data of a chunk's encryption. */
export function chunkAad(archiveId: string, stream: string, seq: number): string {
  return `caas-db-archive:${archiveId}:${stream}:${seq}`;
}
