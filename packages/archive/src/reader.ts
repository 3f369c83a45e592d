import { createHash, timingSafeEqual } from 'node:crypto';
import { BSON, ConfigError, type Document } from '@caas-db/core';
import { z } from 'zod';
import { inflateChunk, manifestMac, manifestMacKey, openChunk, sha256 } from './chunk-codec.js';
import { ArchiveFormatError, ArchiveIntegrityError, ArchiveNotFoundError } from './errors.js';
import type { KeyProvider } from './key-provider.js';
import {
  ARCHIVE_FORMAT,
  ARCHIVE_FORMAT_VERSION,
  type ArchiveManifest,
  type ChunkEntry,
  chunkAad,
  chunkKey,
  macKey,
  manifestKey,
  manifestSchema,
} from './manifest.js';
import { assertArchiveName, assertStreamName } from './names.js';
import type { ArchiveTarget } from './targets.js';

/** Options of {@link openArchive}. */
export interface OpenArchiveOptions {
  target: ArchiveTarget;
  keyProvider: KeyProvider;
  /** The archive's name (key prefix). */
  name: string;
}

const openOptionsSchema = z.strictObject({
  target: z.custom<ArchiveTarget>(
    (value) => typeof value === 'object' && value !== null && typeof (value as ArchiveTarget).get === 'function',
    'must be an ArchiveTarget',
  ),
  keyProvider: z.custom<KeyProvider>(
    (value) => typeof value === 'object' && value !== null && typeof (value as KeyProvider).unwrapKey === 'function',
    'must be a KeyProvider ({ wrapKey, unwrapKey })',
  ),
  name: z.string(),
});

/** One chunk's documents, read and checked. */
export interface ReadChunk {
  /** The chunk as the manifest records it (`seq` is its position in the stream). */
  readonly entry: ChunkEntry;
  /** Its documents, in the order written, with exact BSON types (Int32, Double, Long, Decimal128 ...). */
  readonly documents: Document[];
}

/** What {@link ArchiveReader.verify} checked. */
export interface ArchiveVerification {
  readonly name: string;
  readonly streams: Readonly<Record<string, { count: number; contentSha256: string }>>;
  readonly chunks: number;
  readonly documents: number;
  readonly storedBytes: number;
  readonly sha256: string;
}

function parseManifest(name: string, bytes: Uint8Array): ArchiveManifest {
  const object = manifestKey(name);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new ArchiveIntegrityError(object, 'manifest-syntax', 'not valid JSON', { cause: error });
  }
  const head = json as { format?: unknown; version?: unknown };
  if (typeof head === 'object' && head !== null && head.format === ARCHIVE_FORMAT && head.version !== ARCHIVE_FORMAT_VERSION)
    throw new ArchiveFormatError(`Archive ${name} is format version ${String(head.version)}; this library reads ${ARCHIVE_FORMAT_VERSION}`);
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success)
    throw new ArchiveIntegrityError(
      object,
      'manifest-syntax',
      parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '),
    );
  if (parsed.data.name !== name)
    throw new ArchiveIntegrityError(object, 'manifest-syntax', `names archive ${parsed.data.name}, stored as ${name}`);
  return parsed.data;
}

/** A complete archive, its manifest authenticated; chunks are checked as they are read. */
export class ArchiveReader {
  /** The authenticated manifest. */
  readonly manifest: ArchiveManifest;
  readonly #target: ArchiveTarget;
  readonly #dataKey: Buffer;

  /** @internal use {@link openArchive}. */
  constructor(target: ArchiveTarget, manifest: ArchiveManifest, dataKey: Buffer) {
    this.#target = target;
    this.manifest = manifest;
    this.#dataKey = dataKey;
  }

  /** The stream names, in the order written. */
  get streams(): string[] {
    return Object.keys(this.manifest.streams);
  }

  /**
   * Reads one chunk: its stored bytes must match the manifest's SHA-256, pass authenticated
   * decryption, decompress and parse, and hold the recorded number of documents.
   * @throws {ArchiveIntegrityError} naming the chunk and the check that failed.
   */
  async readChunk(entry: ChunkEntry): Promise<ReadChunk> {
    return (await this.#read(entry)).chunk;
  }

  async #read(entry: ChunkEntry): Promise<{ chunk: ReadChunk; plaintext: Buffer }> {
    let sealed: Uint8Array;
    try {
      sealed = await this.#target.get(entry.key);
    } catch (error) {
      if (error instanceof ArchiveNotFoundError)
        throw new ArchiveIntegrityError(entry.key, 'chunk-missing', 'the manifest lists it', { cause: error });
      throw error;
    }
    if (sha256(sealed) !== entry.sha256)
      throw new ArchiveIntegrityError(entry.key, 'chunk-sha256', 'stored bytes differ from the manifest');
    let compressed: Buffer;
    try {
      compressed = openChunk(sealed, this.#dataKey, chunkAad(this.manifest.id, entry.stream, entry.seq));
    } catch (error) {
      throw new ArchiveIntegrityError(entry.key, 'chunk-decrypt', 'authenticated decryption failed', { cause: error });
    }
    let plaintext: Buffer;
    try {
      plaintext = await inflateChunk(compressed);
    } catch (error) {
      throw new ArchiveIntegrityError(entry.key, 'chunk-decompress', 'gzip stream is damaged', { cause: error });
    }
    if (plaintext.length !== entry.plainBytes)
      throw new ArchiveIntegrityError(entry.key, 'chunk-count', `${plaintext.length} plaintext bytes, manifest says ${entry.plainBytes}`);
    const text = plaintext.toString('utf8');
    const lines = text.length === 0 ? [] : text.slice(0, -1).split('\n');
    if (lines.length !== entry.count)
      throw new ArchiveIntegrityError(entry.key, 'chunk-count', `${lines.length} documents, manifest says ${entry.count}`);
    const documents: Document[] = [];
    try {
      for (const line of lines) documents.push(BSON.EJSON.parse(line, { relaxed: false }) as Document);
    } catch (error) {
      throw new ArchiveIntegrityError(entry.key, 'chunk-syntax', 'a line is not Extended JSON', { cause: error });
    }
    return { chunk: { entry, documents }, plaintext };
  }

  /**
   * The chunks of a stream in order, each read and checked before it is yielded; at the end the
   * stream's count and content hash are checked too. One chunk in memory at a time.
   * @param options.fromSeq - start at this chunk (resuming a restore).
   * @throws {ValidationError} for an invalid stream name; {@link ArchiveIntegrityError} on damage.
   */
  async *chunks(stream: string, options: { fromSeq?: number } = {}): AsyncGenerator<ReadChunk> {
    assertStreamName(stream);
    const summary = this.manifest.streams[stream];
    if (!summary) return;
    const entries = this.manifest.chunks.filter((entry) => entry.stream === stream).sort((a, b) => a.seq - b.seq);
    const from = options.fromSeq ?? 0;
    const whole = from === 0;
    const content = createHash('sha256');
    let count = 0;
    for (const entry of entries) {
      if (entry.seq < from) continue;
      const { chunk, plaintext } = await this.#read(entry);
      count += chunk.documents.length;
      if (whole) content.update(plaintext);
      yield chunk;
    }
    if (whole) {
      const object = chunkKey(this.manifest.name, stream, 0);
      if (count !== summary.count)
        throw new ArchiveIntegrityError(object, 'stream-count', `stream ${stream}: ${count} documents, manifest says ${summary.count}`);
      if (content.digest('hex') !== summary.contentSha256)
        throw new ArchiveIntegrityError(object, 'stream-sha256', `stream ${stream}: content hash differs from the manifest`);
    }
  }

  /** The documents of a stream, in order (see {@link chunks}). */
  async *documents(stream: string): AsyncGenerator<Document> {
    for await (const chunk of this.chunks(stream)) yield* chunk.documents;
  }

  /**
   * Checks the whole archive without using its documents: every chunk (hash, decryption,
   * decompression, parse, count), every stream's count and content hash, the whole-archive hash.
   * @throws {ArchiveIntegrityError} at the first failure.
   */
  async verify(): Promise<ArchiveVerification> {
    const whole = createHash('sha256');
    const streams: Record<string, { count: number; contentSha256: string }> = {};
    let documents = 0;
    let storedBytes = 0;
    for (const stream of this.streams) {
      for await (const chunk of this.chunks(stream)) {
        documents += chunk.documents.length;
        storedBytes += chunk.entry.storedBytes;
      }
      const summary = this.manifest.streams[stream] as { count: number; contentSha256: string };
      streams[stream] = { count: summary.count, contentSha256: summary.contentSha256 };
    }
    // The whole-archive hash runs over chunks in written order (streams may interleave).
    for (const entry of this.manifest.chunks) whole.update(await this.#target.get(entry.key));
    const digest = whole.digest('hex');
    if (digest !== this.manifest.sha256)
      throw new ArchiveIntegrityError(manifestKey(this.manifest.name), 'archive-sha256', 'the chunks together differ from the manifest');
    return { name: this.manifest.name, streams, chunks: this.manifest.chunks.length, documents, storedBytes, sha256: digest };
  }
}

/**
 * Opens a complete archive: reads its manifest, has the key provider unwrap the data key, and
 * authenticates the manifest's exact bytes with a MAC derived from that key.
 * @throws {ConfigError} for invalid options; {@link ArchiveNotFoundError} when no complete archive has
 *   this name; {@link ArchiveKeyError} when the provider lacks the key; {@link ArchiveFormatError} for
 *   another format version; {@link ArchiveIntegrityError} when the manifest or wrapped key was altered.
 */
export async function openArchive(options: OpenArchiveOptions): Promise<ArchiveReader> {
  const parsed = openOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message, code: issue.code })));
  const { target, keyProvider, name } = options;
  assertArchiveName(name);
  let bytes: Uint8Array;
  try {
    bytes = await target.get(manifestKey(name));
  } catch (error) {
    if (error instanceof ArchiveNotFoundError) throw new ArchiveNotFoundError(name, { cause: error });
    throw error;
  }
  const manifest = parseManifest(name, bytes);
  let mac: string;
  try {
    mac = Buffer.from(await target.get(macKey(name))).toString('latin1');
  } catch (error) {
    if (error instanceof ArchiveNotFoundError)
      throw new ArchiveIntegrityError(macKey(name), 'manifest-mac', 'the MAC is missing', { cause: error });
    throw error;
  }
  const dataKey = Buffer.from(
    await keyProvider.unwrapKey(
      { keyId: manifest.encryption.keyId, wrapped: Buffer.from(manifest.encryption.wrappedKey, 'base64') },
      { archive: manifest.id },
    ),
  );
  const expected = Buffer.from(manifestMac(manifestMacKey(dataKey, manifest.id), bytes), 'hex');
  // Exactly 64 hex digits and a newline, as written: any other byte is tampering too.
  const given = Buffer.from(/^[0-9a-f]{64}\n$/.test(mac) ? mac.slice(0, 64) : '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw new ArchiveIntegrityError(manifestKey(name), 'manifest-mac', 'the manifest is not the one its writer sealed');
  return new ArchiveReader(target, manifest, dataKey);
}

/** An archive as listed (its manifest read but not authenticated: open it to trust it). */
export interface ArchiveListing {
  readonly name: string;
  readonly kind: string;
  readonly createdAt: string;
  readonly finishedAt: string;
  readonly keyId: string;
  readonly documents: number;
  readonly storedBytes: number;
  readonly metadata: Record<string, unknown>;
}

/**
 * The complete archives whose names start with `prefix`, oldest first by `createdAt`. Manifests
 * that do not parse are skipped (open them to get the error).
 */
export async function listArchives(target: ArchiveTarget, prefix = ''): Promise<ArchiveListing[]> {
  const listings: ArchiveListing[] = [];
  for (const key of await target.list(prefix)) {
    if (!key.endsWith('/manifest.json')) continue;
    const name = key.slice(0, -'/manifest.json'.length);
    try {
      const manifest = parseManifest(name, await target.get(key));
      listings.push({
        name,
        kind: manifest.kind,
        createdAt: manifest.createdAt,
        finishedAt: manifest.finishedAt,
        keyId: manifest.encryption.keyId,
        documents: Object.values(manifest.streams).reduce((sum, stream) => sum + stream.count, 0),
        storedBytes: manifest.chunks.reduce((sum, chunk) => sum + chunk.storedBytes, 0),
        metadata: manifest.metadata,
      });
    } catch {
      // A damaged manifest is reported by openArchive, which names the check that failed.
    }
  }
  return listings.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
}

/**
 * Deletes an archive: its manifest first (so it stops being listed), then its MAC and chunks.
 * @throws {ValidationError} for an invalid name.
 */
export async function deleteArchive(target: ArchiveTarget, name: string): Promise<void> {
  assertArchiveName(name);
  await target.delete(manifestKey(name));
  await target.delete(macKey(name));
  const prefix = `${name}/`;
  // Only this archive's chunks, not those of an archive named below it (`<name>/<more>`).
  const own = /^[A-Za-z0-9._-]+\/\d{6}\.chunk$/;
  for (const key of await target.list(prefix)) if (own.test(key.slice(prefix.length))) await target.delete(key);
}
