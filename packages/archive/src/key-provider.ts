import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ConfigError } from '@caas-db/core';
import { ArchiveIntegrityError, ArchiveKeyError } from './errors.js';

/** A data key wrapped (encrypted) by a key encryption key that only the key provider holds. */
export interface WrappedKey {
  /** Which key encryption key wrapped it; recorded in the manifest. */
  readonly keyId: string;
  /** The wrapped data key (opaque to the archive). */
  readonly wrapped: Uint8Array;
}

/**
 * Wraps and unwraps per-archive data keys. Implement it over a KMS (AWS KMS `Encrypt`/`Decrypt`,
 * GCP KMS, Vault transit) so key encryption keys never leave it; {@link createLocalKeyProvider}
 * holds keys in process memory (tests, small deployments, keys from a secret store).
 *
 * `context` names the archive (`{ archive: 'backups/acme/2026-11-30T12-00-00Z' }`): a KMS can bind
 * it as encryption context so a wrapped key cannot be moved to another archive.
 */
export interface KeyProvider {
  /** Wraps a fresh 32-byte data key with the provider's current key. */
  wrapKey(dataKey: Uint8Array, context: Readonly<Record<string, string>>): Promise<WrappedKey>;
  /**
   * Unwraps a data key. Throws {@link ArchiveKeyError} when the key id is unknown,
   * {@link ArchiveIntegrityError} (check `key-unwrap`) when the wrapped bytes fail authentication.
   */
  unwrapKey(key: WrappedKey, context: Readonly<Record<string, string>>): Promise<Uint8Array>;
}

/** Options of {@link createLocalKeyProvider}. */
export interface LocalKeyProviderOptions {
  /** Key encryption keys by id, each 32 bytes (AES-256). Keep old ones to read old archives. */
  keys: Readonly<Record<string, Uint8Array>>;
  /** The id of the key new archives are wrapped with. */
  current: string;
}

const KEY_WRAP_AAD_PREFIX = 'caas-db-archive-key:';

function contextAad(context: Readonly<Record<string, string>>): Buffer {
  const entries = Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(KEY_WRAP_AAD_PREFIX + JSON.stringify(entries));
}

/**
 * A key provider holding AES-256 key encryption keys in memory; wraps with AES-256-GCM (the
 * archive context as associated data, so a wrapped key only opens for its own archive).
 *
 * @throws {ConfigError} when a key is not 32 bytes or `current` names no key.
 */
export function createLocalKeyProvider(options: LocalKeyProviderOptions): KeyProvider {
  const issues = [];
  if (typeof options !== 'object' || options === null || typeof options.keys !== 'object' || options.keys === null)
    throw new ConfigError([{ path: 'keys', message: 'must be an object of 32-byte keys by id', code: 'invalid_type' }]);
  const keys = new Map<string, Buffer>();
  for (const [id, key] of Object.entries(options.keys)) {
    if (!(key instanceof Uint8Array) || key.byteLength !== 32)
      issues.push({ path: `keys.${id}`, message: 'must be a 32-byte Uint8Array (AES-256)', code: 'invalid_type' });
    else keys.set(id, Buffer.from(key));
  }
  if (typeof options.current !== 'string' || !keys.has(options.current))
    issues.push({ path: 'current', message: 'must name one of keys', code: 'invalid_value' });
  if (issues.length > 0) throw new ConfigError(issues);
  const current = options.current;
  return {
    async wrapKey(dataKey, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', keys.get(current) as Buffer, iv);
      cipher.setAAD(contextAad(context));
      const sealed = Buffer.concat([iv, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
      return { keyId: current, wrapped: sealed };
    },
    async unwrapKey(key, context) {
      const kek = keys.get(key.keyId);
      if (!kek) throw new ArchiveKeyError(key.keyId, 'the key provider holds no key with this id');
      const bytes = Buffer.from(key.wrapped);
      try {
        const decipher = createDecipheriv('aes-256-gcm', kek, bytes.subarray(0, 12));
        decipher.setAAD(contextAad(context));
        decipher.setAuthTag(bytes.subarray(bytes.length - 16));
        return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]);
      } catch (error) {
        throw new ArchiveIntegrityError(context.archive ?? '(archive)', 'key-unwrap', 'the wrapped data key failed authentication', {
          cause: error,
        });
      }
    },
  };
}
