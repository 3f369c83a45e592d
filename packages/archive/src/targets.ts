import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { ConfigError, ValidationError } from '@caas-db/core';
import { ArchiveNotFoundError } from './errors.js';

/**
 * Where archives are stored: a flat namespace of objects named by `/`-separated keys. Objects are
 * written whole and once (chunks are bounded in size, so whole-object I/O keeps memory bounded),
 * which is what object stores offer. `put` must be atomic: a reader never sees half an object.
 */
export interface ArchiveTarget {
  /** Stores `data` under `key`, replacing any object there, atomically. */
  put(key: string, data: Uint8Array): Promise<void>;
  /** The object's bytes. @throws {ArchiveNotFoundError} when there is none. */
  get(key: string): Promise<Uint8Array>;
  /** Whether an object exists under `key`. */
  has(key: string): Promise<boolean>;
  /** Every key starting with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Removes the object, if any. */
  delete(key: string): Promise<void>;
}

/**
 * The few calls of an object store (S3, GCS, Azure Blob) an archive needs. Adapt your SDK's client
 * to it (`PutObject`, `GetObject`, `ListObjectsV2`, `DeleteObject`) and pass it to
 * {@link objectStorageTarget}. `getObject` returns `undefined` for a missing key.
 */
export interface ObjectStore {
  putObject(key: string, body: Uint8Array): Promise<void>;
  getObject(key: string): Promise<Uint8Array | undefined>;
  listObjects(prefix: string): Promise<string[]>;
  deleteObject(key: string): Promise<void>;
}

const keyPattern = /^(?!\/)(?!.*\/\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._\-/=:+@]{1,512}(?<!\/)$/;

/**
 * Checks an object key: `/`-separated segments of letters, digits and `._-=:+@`, no empty, `.` or
 * `..` segment (a key can never leave the target's directory).
 * @throws {ValidationError} naming the key.
 */
export function assertObjectKey(key: string, subject = 'object key'): void {
  if (typeof key !== 'string' || !keyPattern.test(key))
    throw new ValidationError(subject, [
      {
        path: '',
        message: `${JSON.stringify(key)} must be /-separated segments of [A-Za-z0-9._-=:+@], no empty, . or .. segment`,
        code: 'invalid_format',
      },
    ]);
}

/**
 * Archives in a local directory: one file per object, written to a temporary file, fsynced and
 * renamed into place so a crash never leaves a partial object under its final name.
 * @throws {ConfigError} when `directory` is not a non-empty string.
 */
export function filesystemTarget(directory: string, options: { fsync?: boolean } = {}): ArchiveTarget {
  if (typeof directory !== 'string' || directory.length === 0)
    throw new ConfigError([{ path: 'directory', message: 'must be a non-empty path', code: 'invalid_type' }]);
  const root = resolve(directory);
  const fsync = options.fsync ?? true;
  const pathOf = (key: string) => {
    assertObjectKey(key);
    return join(root, ...key.split('/'));
  };
  return {
    async put(key, data) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      const handle = await open(temporary, 'w');
      try {
        await handle.writeFile(data);
        if (fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, path);
    },
    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ArchiveNotFoundError(key, { cause: error });
        throw error;
      }
    },
    async has(key) {
      try {
        await (await open(pathOf(key), 'r')).close();
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
    },
    async list(prefix) {
      const keys: string[] = [];
      const walk = async (directoryPath: string) => {
        let entries: import('node:fs').Dirent[];
        try {
          entries = await readdir(directoryPath, { withFileTypes: true });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw error;
        }
        for (const entry of entries) {
          const path = join(directoryPath, entry.name);
          if (entry.isDirectory()) await walk(path);
          else if (!entry.name.endsWith('.tmp')) keys.push(relative(root, path).split(sep).join('/'));
        }
      };
      await walk(root);
      return keys.filter((key) => key.startsWith(prefix)).sort();
    },
    async delete(key) {
      try {
        await unlink(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    },
  };
}

/**
 * Archives in an object store, under `prefix` (e.g. `caas-backups/`).
 * @throws {ConfigError} when `store` lacks one of the four calls.
 */
export function objectStorageTarget(store: ObjectStore, options: { prefix?: string } = {}): ArchiveTarget {
  const missing = (['putObject', 'getObject', 'listObjects', 'deleteObject'] as const).filter(
    (name) => typeof (store as unknown as Record<string, unknown>)?.[name] !== 'function',
  );
  if (missing.length > 0)
    throw new ConfigError(missing.map((name) => ({ path: `store.${name}`, message: 'must be a function', code: 'invalid_type' })));
  const prefix = options.prefix ?? '';
  if (prefix !== '') assertObjectKey(prefix.replace(/\/$/, ''), 'prefix');
  const full = (key: string) => {
    assertObjectKey(key);
    return prefix + key;
  };
  return {
    put: (key, data) => store.putObject(full(key), data),
    async get(key) {
      const body = await store.getObject(full(key));
      if (body === undefined) throw new ArchiveNotFoundError(key);
      return body;
    },
    has: async (key) => (await store.getObject(full(key))) !== undefined,
    list: async (keyPrefix) => (await store.listObjects(prefix + keyPrefix)).map((key) => key.slice(prefix.length)).sort(),
    delete: (key) => store.deleteObject(full(key)),
  };
}

/** An {@link ObjectStore} in process memory (tests, examples). Copies bytes in and out. */
export function memoryObjectStore(): ObjectStore & { readonly objects: Map<string, Uint8Array> } {
  const objects = new Map<string, Uint8Array>();
  return {
    objects,
    putObject: async (key, body) => {
      objects.set(key, Uint8Array.from(body));
    },
    getObject: async (key) => {
      const body = objects.get(key);
      return body === undefined ? undefined : Uint8Array.from(body);
    },
    listObjects: async (prefix) => [...objects.keys()].filter((key) => key.startsWith(prefix)).sort(),
    deleteObject: async (key) => {
      objects.delete(key);
    },
  };
}
