import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BSON, ConfigError, isCaasDbError, ObjectId, ValidationError } from '@caas-db/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ArchiveIntegrityError,
  ArchiveKeyError,
  ArchiveNotFoundError,
  ArchiveStateError,
  type ArchiveTarget,
  canonicalLine,
  contentHasher,
  createArchiveWriter,
  createLocalKeyProvider,
  deleteArchive,
  filesystemTarget,
  listArchives,
  memoryObjectStore,
  objectStorageTarget,
  openArchive,
} from '../src/index.js';

const keyProvider = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 1), k2: Buffer.alloc(32, 2) }, current: 'k2' });

function sampleDocument(index: number) {
  return {
    _id: new ObjectId(),
    tenant_id: 'acme',
    n: new BSON.Int32(index),
    ratio: new BSON.Double(2),
    big: BSON.Long.fromString('9007199254740993'),
    price: BSON.Decimal128.fromString('10.50'),
    at: new Date(Date.UTC(2026, 10, 30, 12, 0, index % 60)),
    blob: new BSON.Binary(Buffer.from([index % 256, 1, 2])),
    text: `message ${index} ${'x'.repeat(index % 50)}`,
    nested: { list: [1, 'two', { three: null }] },
  };
}

async function writeSample(target: ArchiveTarget, name: string, count = 500, chunkBytes = 8 * 1024) {
  const writer = await createArchiveWriter({ target, keyProvider, name, kind: 'backup', chunkBytes });
  const documents = Array.from({ length: count }, (_, index) => sampleDocument(index));
  const half = Math.floor(count / 2);
  // Two streams interleaved, written by concurrent callers.
  await Promise.all([writer.writeMany('messages', documents.slice(0, half)), writer.writeMany('users', documents.slice(half))]);
  await writer.declareStream('files');
  const manifest = await writer.finish({ tenant: 'acme', at: '2026-11-30T12:00:00Z' });
  return { manifest, documents, half };
}

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-archive-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe.each([
  ['filesystem', () => filesystemTarget(join(directory, `fs-${Math.random().toString(36).slice(2)}`), { fsync: false })],
  ['object storage', () => objectStorageTarget(memoryObjectStore(), { prefix: 'caas/' })],
])('archive on %s', (_label, makeTarget) => {
  it('round-trips documents with every BSON type, in order, chunked, and verifies', async () => {
    const target = makeTarget();
    const { manifest, documents, half } = await writeSample(target, 'backups/acme/one');
    expect(manifest.chunks.length).toBeGreaterThan(4);
    expect(manifest.streams.messages?.count).toBe(half);
    expect(manifest.streams.files).toMatchObject({ count: 0, chunks: 0 });
    expect(manifest.encryption.keyId).toBe('k2');
    expect(manifest.metadata).toEqual({ tenant: 'acme', at: '2026-11-30T12:00:00Z' });

    const reader = await openArchive({ target, keyProvider, name: 'backups/acme/one' });
    const messages = [];
    for await (const document of reader.documents('messages')) messages.push(document);
    expect(messages.map(canonicalLine)).toEqual(documents.slice(0, half).map(canonicalLine));
    expect(messages[3]?.n).toBeInstanceOf(BSON.Int32);
    expect(messages[3]?.ratio).toBeInstanceOf(BSON.Double);

    const hasher = contentHasher();
    for (const document of documents.slice(half)) hasher.update(document);
    expect(manifest.streams.users?.contentSha256).toBe(hasher.digest());

    const verification = await reader.verify();
    expect(verification).toMatchObject({ documents: documents.length, chunks: manifest.chunks.length, sha256: manifest.sha256 });

    // Resuming from a chunk reads only the chunks from there on.
    const from = 2;
    const resumed = [];
    for await (const chunk of reader.chunks('users', { fromSeq: from })) resumed.push(chunk.entry.seq);
    expect(resumed[0]).toBe(from);
  });

  it('lists complete archives only, and deletes one', async () => {
    const target = makeTarget();
    await writeSample(target, 'backups/acme/a', 20);
    const unfinished = await createArchiveWriter({ target, keyProvider, name: 'backups/acme/b', kind: 'backup', chunkBytes: 1024 });
    for (let index = 0; index < 50; index += 1) await unfinished.write('messages', sampleDocument(index));
    const listed = await listArchives(target, 'backups/acme/');
    expect(listed.map((listing) => listing.name)).toEqual(['backups/acme/a']);
    expect(listed[0]).toMatchObject({ kind: 'backup', documents: 20, keyId: 'k2', metadata: { tenant: 'acme' } });
    await expect(openArchive({ target, keyProvider, name: 'backups/acme/b' })).rejects.toBeInstanceOf(ArchiveNotFoundError);
    await unfinished.abort();
    expect(await target.list('backups/acme/b')).toEqual([]);

    await expect(createArchiveWriter({ target, keyProvider, name: 'backups/acme/a', kind: 'backup' })).rejects.toBeInstanceOf(
      ArchiveStateError,
    );
    await deleteArchive(target, 'backups/acme/a');
    expect(await target.list('backups/acme/a')).toEqual([]);
  });
});

describe('tampering', () => {
  it('a flipped byte anywhere in any chunk fails reading and verify with ArchiveIntegrityError', async () => {
    const store = memoryObjectStore();
    const target = objectStorageTarget(store);
    const { manifest } = await writeSample(target, 'b', 200, 2048);
    const reader = await openArchive({ target, keyProvider, name: 'b' });
    for (const entry of manifest.chunks) {
      const original = store.objects.get(entry.key) as Uint8Array;
      for (const position of [0, 11, 12, Math.floor(original.length / 2), original.length - 17, original.length - 1]) {
        const damaged = Uint8Array.from(original);
        damaged[position] = (damaged[position] as number) ^ 0x01;
        store.objects.set(entry.key, damaged);
        const error = await reader.readChunk(entry).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(ArchiveIntegrityError);
        expect((error as ArchiveIntegrityError).object).toBe(entry.key);
      }
      store.objects.set(entry.key, original);
    }
    await expect(reader.verify()).resolves.toMatchObject({ documents: 200 });
  });

  it('a chunk swapped for another, or removed, is detected', async () => {
    const store = memoryObjectStore();
    const target = objectStorageTarget(store);
    const { manifest } = await writeSample(target, 'b', 200, 2048);
    const [first, second] = manifest.chunks.filter((entry) => entry.stream === 'messages');
    if (!first || !second) throw new Error('expected two chunks');
    const bytes = store.objects.get(first.key) as Uint8Array;
    store.objects.set(second.key, bytes);
    const reader = await openArchive({ target, keyProvider, name: 'b' });
    await expect(reader.verify()).rejects.toMatchObject({ code: 'E_ARCHIVE_INTEGRITY', object: second.key });
    store.objects.delete(second.key);
    await expect(reader.verify()).rejects.toMatchObject({ code: 'E_ARCHIVE_INTEGRITY', check: 'chunk-missing' });
  });

  it('a flipped byte at every position of the manifest or its MAC fails opening with a typed archive error', async () => {
    const store = memoryObjectStore();
    const target = objectStorageTarget(store);
    await writeSample(target, 'b', 30, 2048);
    for (const key of ['b/manifest.json', 'b/manifest.mac']) {
      const original = store.objects.get(key) as Uint8Array;
      for (let position = 0; position < original.length; position += 1) {
        const damaged = Uint8Array.from(original);
        damaged[position] = (damaged[position] as number) ^ 0x01;
        store.objects.set(key, damaged);
        const error = await openArchive({ target, keyProvider, name: 'b' }).catch((caught: unknown) => caught);
        // A flip inside the key id names a key the provider lacks (E_ARCHIVE_KEY); in the format
        // version, another version (E_ARCHIVE_FORMAT); everywhere else the MAC, JSON or unwrap fails.
        expect(isCaasDbError(error), `flip at ${key}:${position}`).toBe(true);
        expect((error as { code: string }).code).toMatch(/^E_ARCHIVE_(INTEGRITY|KEY|FORMAT)$/);
      }
      store.objects.set(key, original);
    }
    await expect(openArchive({ target, keyProvider, name: 'b' })).resolves.toBeDefined();
  });

  it('a file-system chunk altered on disk is detected', async () => {
    const root = join(directory, 'tamper-fs');
    const target = filesystemTarget(root, { fsync: false });
    const { manifest } = await writeSample(target, 'b', 100, 2048);
    const entry = manifest.chunks[1];
    if (!entry) throw new Error('expected chunks');
    const path = join(root, ...entry.key.split('/'));
    const bytes = await readFile(path);
    bytes[40] = (bytes[40] as number) ^ 0x80;
    await writeFile(path, bytes);
    const reader = await openArchive({ target, keyProvider, name: 'b' });
    await expect(reader.verify()).rejects.toMatchObject({ code: 'E_ARCHIVE_INTEGRITY', check: 'chunk-sha256' });
  });
});

describe('keys', () => {
  it('opens with an older key after rotation, and refuses a provider without the key', async () => {
    const target = objectStorageTarget(memoryObjectStore());
    const old = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 1) }, current: 'k1' });
    const writer = await createArchiveWriter({ target, keyProvider: old, name: 'x', kind: 'journal' });
    await writer.write('events', { a: 1 });
    await writer.finish();
    // The rotated provider (current k2) still holds k1.
    const reader = await openArchive({ target, keyProvider, name: 'x' });
    expect(reader.manifest.encryption.keyId).toBe('k1');
    const other = createLocalKeyProvider({ keys: { k9: Buffer.alloc(32, 9) }, current: 'k9' });
    await expect(openArchive({ target, keyProvider: other, name: 'x' })).rejects.toBeInstanceOf(ArchiveKeyError);
    const impostor = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 7) }, current: 'k1' });
    await expect(openArchive({ target, keyProvider: impostor, name: 'x' })).rejects.toMatchObject({ check: 'key-unwrap' });
  });
});

describe('input validation', () => {
  it('refuses bad options, names, streams and documents with typed errors naming them', async () => {
    const target = objectStorageTarget(memoryObjectStore());
    expect(() => createLocalKeyProvider({ keys: { a: Buffer.alloc(16) }, current: 'a' })).toThrow(ConfigError);
    expect(() => createLocalKeyProvider({ keys: { a: Buffer.alloc(32) }, current: 'b' })).toThrow(/current/);
    await expect(createArchiveWriter({ target, keyProvider, name: 'x', kind: 'Bad Kind' })).rejects.toBeInstanceOf(ConfigError);
    await expect(createArchiveWriter({ target, keyProvider, name: '../escape', kind: 'backup' })).rejects.toBeInstanceOf(ValidationError);
    await expect(createArchiveWriter({ target, keyProvider, name: 'a//b', kind: 'backup' })).rejects.toBeInstanceOf(ValidationError);
    await expect(createArchiveWriter({ target, keyProvider, name: 'x', kind: 'backup', chunkBytes: 10 })).rejects.toThrow(/chunkBytes/);
    const writer = await createArchiveWriter({ target, keyProvider, name: 'x', kind: 'backup' });
    expect(() => writer.write('../users', {})).toThrow(ValidationError);
    expect(() => writer.write('manifest.json', {})).toThrow(ValidationError);
    expect(() => writer.write('users', null as never)).toThrow(ValidationError);
    expect(() => writer.finish({ bad: 1n } as never)).toThrow(ValidationError);
    await writer.finish();
    expect(() => writer.write('users', {})).toThrow(ArchiveStateError);
    expect(() => filesystemTarget('')).toThrow(ConfigError);
    expect(() => objectStorageTarget({} as never)).toThrow(ConfigError);
    await expect(openArchive({ target, keyProvider, name: 'missing' })).rejects.toBeInstanceOf(ArchiveNotFoundError);
  });
});
