import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Length of the AES-GCM nonce and tag that frame every sealed chunk. */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Hex SHA-256 of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The key that authenticates a manifest, derived from the data key (never stored). */
export function manifestMacKey(dataKey: Uint8Array, archiveId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', dataKey, Buffer.from(archiveId), Buffer.from('caas-db-archive manifest'), 32));
}

/** Hex HMAC-SHA256 of the manifest's exact bytes. */
export function manifestMac(macKey: Uint8Array, manifestBytes: Uint8Array): string {
  return createHmac('sha256', macKey).update(manifestBytes).digest('hex');
}

/**
 * gzip then AES-256-GCM: `iv ‖ ciphertext ‖ tag`. The associated data binds the chunk to its archive,
 * stream and position, so a chunk moved to another place (or archive) fails authentication.
 */
export async function sealChunk(plaintext: Uint8Array, dataKey: Uint8Array, aad: string): Promise<Buffer> {
  const compressed = await gzipAsync(plaintext);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(Buffer.from(aad));
  return Buffer.concat([iv, cipher.update(compressed), cipher.final(), cipher.getAuthTag()]);
}

/** Decrypts (authenticating) a sealed chunk; returns the compressed bytes. Throws on any tampering. */
export function openChunk(sealed: Uint8Array, dataKey: Uint8Array, aad: string): Buffer {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (bytes.length < IV_BYTES + TAG_BYTES) throw new RangeError('sealed chunk shorter than its framing');
  const decipher = createDecipheriv('aes-256-gcm', dataKey, bytes.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
}

/** Decompresses an opened chunk. */
export function inflateChunk(compressed: Uint8Array): Promise<Buffer> {
  return gunzipAsync(compressed);
}

/** A fresh random 32-byte data key. */
export function newDataKey(): Buffer {
  return randomBytes(32);
}
