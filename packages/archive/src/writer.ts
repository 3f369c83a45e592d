import { createHash, randomUUID } from 'node:crypto';
import { BSON, ConfigError, type Document, ValidationError } from '@caas-db/core';
import { z } from 'zod';
import { manifestMac, manifestMacKey, newDataKey, sealChunk, sha256 } from './chunk-codec.js';
import { ArchiveStateError } from './errors.js';
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
  type StreamSummary,
} from './manifest.js';
import { assertArchiveName, assertStreamName } from './names.js';
import type { ArchiveTarget } from './targets.js';

/** Options of {@link createArchiveWriter}. */
export interface ArchiveWriterOptions {
  /** Where the archive's objects go. */
  target: ArchiveTarget;
  /** Wraps the archive's fresh data key. */
  keyProvider: KeyProvider;
  /** The archive's name: the key prefix of its objects (`backups/acme/2026-11-30T120000Z`). */
  name: string;
  /** What the archive is (`backup`, `journal`, `lifecycle`); recorded in the manifest. */
  kind: string;
  /**
   * Plaintext bytes of EJSON lines per chunk. The writer holds at most one chunk per open stream
   * (plus its compressed and sealed copies while it is stored), so this bounds its memory.
   * @default 4 MiB
   */
  chunkBytes?: number;
  /** Replace an archive already complete under this name. @default false */
  overwrite?: boolean;
}

const writerOptionsSchema = z.strictObject({
  target: z.custom<ArchiveTarget>(
    (value) => typeof value === 'object' && value !== null && typeof (value as ArchiveTarget).put === 'function',
    'must be an ArchiveTarget',
  ),
  keyProvider: z.custom<KeyProvider>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as KeyProvider).wrapKey === 'function' &&
      typeof (value as KeyProvider).unwrapKey === 'function',
    'must be a KeyProvider ({ wrapKey, unwrapKey })',
  ),
  name: z.string(),
  kind: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be 1-40 of a-z, 0-9 and -, starting with a letter'),
  chunkBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .optional(),
  overwrite: z.boolean().optional(),
});

/** Counts of what a writer has stored so far. */
export interface ArchiveWriterStats {
  documents: number;
  plainBytes: number;
  storedBytes: number;
  chunks: number;
}

interface OpenStream {
  lines: string[];
  bytes: number;
  count: number;
  plainBytes: number;
  chunks: number;
  content: ReturnType<typeof createHash>;
}

/**
 * Writes one archive: documents appended to named streams, cut into sealed chunks stored as they
 * fill, then an authenticated manifest. Calls are serialized internally, so concurrent `write`s are
 * safe; each returns once its document is buffered or its chunk stored (backpressure).
 */
export class ArchiveWriter {
  /** The archive's name (key prefix). */
  readonly name: string;
  /** The archive's random id. */
  readonly id: string;
  readonly #target: ArchiveTarget;
  readonly #dataKey: Buffer;
  readonly #keyId: string;
  readonly #wrappedKey: string;
  readonly #kind: string;
  readonly #chunkBytes: number;
  readonly #createdAt: string;
  readonly #streams = new Map<string, OpenStream>();
  readonly #chunks: ChunkEntry[] = [];
  readonly #whole = createHash('sha256');
  #tail: Promise<unknown> = Promise.resolve();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  #stats: ArchiveWriterStats = { documents: 0, plainBytes: 0, storedBytes: 0, chunks: 0 };

  /** @internal use {@link createArchiveWriter}. */
  constructor(init: {
    target: ArchiveTarget;
    name: string;
    id: string;
    kind: string;
    chunkBytes: number;
    dataKey: Buffer;
    keyId: string;
    wrappedKey: string;
  }) {
    this.#target = init.target;
    this.name = init.name;
    this.id = init.id;
    this.#kind = init.kind;
    this.#chunkBytes = init.chunkBytes;
    this.#dataKey = init.dataKey;
    this.#keyId = init.keyId;
    this.#wrappedKey = init.wrappedKey;
    this.#createdAt = new Date().toISOString();
  }

  /** What has been stored so far. */
  get stats(): Readonly<ArchiveWriterStats> {
    return { ...this.#stats };
  }

  /**
   * Appends a document to `stream` (created on first use). The document is serialized at once
   * (canonical Extended JSON, so every BSON type survives), so the caller may reuse it.
   * @throws {ValidationError} for an invalid stream name or a non-object document.
   * @throws {ArchiveStateError} after `finish()` or `abort()`.
   */
  write(stream: string, document: Document): Promise<void> {
    assertStreamName(stream);
    if (typeof document !== 'object' || document === null || Array.isArray(document))
      throw new ValidationError('document', [{ path: '', message: 'must be an object', code: 'invalid_type' }]);
    this.#assertOpen();
    const line = BSON.EJSON.stringify(document, { relaxed: false });
    return this.#enqueue(async () => {
      const open = this.#open(stream);
      open.lines.push(line);
      open.bytes += Buffer.byteLength(line) + 1;
      open.count += 1;
      if (open.bytes >= this.#chunkBytes) await this.#flush(stream, open);
    });
  }

  /** Appends many documents to `stream`, in order. */
  async writeMany(stream: string, documents: Iterable<Document>): Promise<void> {
    for (const document of documents) await this.write(stream, document);
  }

  /**
   * Declares a stream that may stay empty (so the manifest lists it with count 0).
   * @throws {ValidationError} for an invalid stream name.
   */
  declareStream(stream: string): Promise<void> {
    assertStreamName(stream);
    this.#assertOpen();
    return this.#enqueue(async () => {
      this.#open(stream);
    });
  }

  /**
   * Stores the last partial chunks, then the manifest and its MAC: only now does the archive exist
   * for readers (`openArchive`, `listArchives`).
   * @param metadata - the writer's own facts, JSON values only (tenant, consistency point, versions).
   * @throws {ValidationError} when `metadata` is not a JSON object.
   */
  finish(metadata: Record<string, unknown> = {}): Promise<ArchiveManifest> {
    this.#assertOpen();
    let plainMetadata: Record<string, unknown>;
    try {
      plainMetadata = JSON.parse(JSON.stringify(metadata)) as Record<string, unknown>;
      if (typeof plainMetadata !== 'object' || plainMetadata === null || Array.isArray(plainMetadata)) throw new TypeError('not an object');
    } catch (error) {
      throw new ValidationError('metadata', [{ path: '', message: 'must be a JSON object', code: 'invalid_type' }], { cause: error });
    }
    this.#state = 'finished';
    return this.#enqueue(async () => {
      for (const [stream, open] of this.#streams) if (open.lines.length > 0) await this.#flush(stream, open);
      const streams: Record<string, StreamSummary> = {};
      for (const [stream, open] of this.#streams)
        streams[stream] = {
          count: open.count,
          plainBytes: open.plainBytes,
          chunks: open.chunks,
          contentSha256: open.content.digest('hex'),
        };
      const manifest: ArchiveManifest = {
        format: ARCHIVE_FORMAT,
        version: ARCHIVE_FORMAT_VERSION,
        name: this.name,
        id: this.id,
        kind: this.#kind,
        createdAt: this.#createdAt,
        finishedAt: new Date().toISOString(),
        encryption: { algorithm: 'AES-256-GCM', keyId: this.#keyId, wrappedKey: this.#wrappedKey },
        compression: 'gzip',
        encoding: 'ejson-canonical-lines',
        streams,
        chunks: this.#chunks,
        sha256: this.#whole.digest('hex'),
        metadata: plainMetadata,
      };
      const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      // The MAC first, the manifest last: a manifest under its final name marks a complete archive.
      await this.#target.put(macKey(this.name), Buffer.from(`${manifestMac(manifestMacKey(this.#dataKey, this.id), bytes)}\n`));
      await this.#target.put(manifestKey(this.name), bytes);
      this.#dataKey.fill(0);
      return manifest;
    }) as Promise<ArchiveManifest>;
  }

  /** Gives up: deletes the chunks stored so far. The archive never appears to readers. */
  async abort(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'aborted';
    await this.#tail.catch(() => undefined);
    for (const chunk of this.#chunks) await this.#target.delete(chunk.key);
    this.#dataKey.fill(0);
  }

  #assertOpen(): void {
    if (this.#state !== 'open') throw new ArchiveStateError(`Archive ${this.name} is ${this.#state}: no more writes`);
  }

  #enqueue<T>(step: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(step);
    // A failed step fails its caller; later steps still run in order.
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #open(stream: string): OpenStream {
    let open = this.#streams.get(stream);
    if (!open) {
      open = { lines: [], bytes: 0, count: 0, plainBytes: 0, chunks: 0, content: createHash('sha256') };
      this.#streams.set(stream, open);
    }
    return open;
  }

  async #flush(stream: string, open: OpenStream): Promise<void> {
    const plaintext = Buffer.from(`${open.lines.join('\n')}\n`);
    const count = open.lines.length;
    open.lines = [];
    open.bytes = 0;
    const seq = open.chunks;
    const key = chunkKey(this.name, stream, seq);
    const sealed = await sealChunk(plaintext, this.#dataKey, chunkAad(this.id, stream, seq));
    await this.#target.put(key, sealed);
    open.content.update(plaintext);
    open.chunks += 1;
    open.plainBytes += plaintext.length;
    this.#whole.update(sealed);
    this.#chunks.push({ stream, seq, key, count, plainBytes: plaintext.length, storedBytes: sealed.length, sha256: sha256(sealed) });
    this.#stats = {
      documents: this.#stats.documents + count,
      plainBytes: this.#stats.plainBytes + plaintext.length,
      storedBytes: this.#stats.storedBytes + sealed.length,
      chunks: this.#stats.chunks + 1,
    };
  }
}

/**
 * Starts an archive: draws a fresh data key and has the key provider wrap it.
 * @throws {ConfigError} for invalid options.
 * @throws {ValidationError} for an invalid archive name.
 * @throws {ArchiveStateError} when a complete archive exists under `name` and `overwrite` is not set.
 */
export async function createArchiveWriter(options: ArchiveWriterOptions): Promise<ArchiveWriter> {
  const parsed = writerOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message, code: issue.code })));
  assertArchiveName(options.name);
  if (!options.overwrite && (await options.target.has(manifestKey(options.name))))
    throw new ArchiveStateError(`An archive named ${options.name} exists already (pass overwrite: true to replace it)`);
  const id = randomUUID();
  const dataKey = newDataKey();
  const wrapped = await options.keyProvider.wrapKey(dataKey, { archive: id });
  return new ArchiveWriter({
    target: options.target,
    name: options.name,
    id,
    kind: options.kind,
    chunkBytes: options.chunkBytes ?? 4 * 1024 * 1024,
    dataKey,
    keyId: wrapped.keyId,
    wrappedKey: Buffer.from(wrapped.wrapped).toString('base64'),
  });
}
