import { BSON, ObjectId } from '@caas-db/core';

/** A cached value with its freshness window. `value: null` is a negative entry (not found). */
export interface CacheEntry {
  value: unknown;
  /** Served as a hit until then (epoch milliseconds). */
  freshUntil: number;
  /** Served stale (and refreshed) or on a database failure until then. */
  staleUntil: number;
}

/**
 * Encodes an entry as BSON, so ObjectId, Date, Binary and Decimal128 survive the round trip
 * through Redis (and the in-process tier hands every caller its own copy).
 */
export function encodeEntry(entry: CacheEntry): Buffer {
  return Buffer.from(BSON.serialize({ v: entry.value ?? null, f: entry.freshUntil, s: entry.staleUntil }));
}

/** Decodes an entry; anything that is not one (a corrupt or foreign value) yields undefined. */
export function decodeEntry(buffer: Uint8Array | null | undefined): CacheEntry | undefined {
  if (!buffer || buffer.length < 5) return undefined;
  try {
    const document = BSON.deserialize(buffer, { promoteBuffers: false });
    if (typeof document.f !== 'number' || typeof document.s !== 'number' || !('v' in document)) return undefined;
    return { value: document.v, freshUntil: document.f, staleUntil: document.s };
  } catch {
    return undefined;
  }
}

/**
 * The decoded form of each encoded entry an L1 holds, kept beside it so a hit does not decode the
 * buffer again. Never handed to a caller: each hit gets {@link copyValue} of it.
 */
const decodedEntries = new WeakMap<Uint8Array, CacheEntry | null>();

/** {@link decodeEntry}, remembered per buffer (an L1 entry's buffer is never written to). */
export function decodeEntryOnce(buffer: Uint8Array | null | undefined): CacheEntry | undefined {
  if (!buffer) return undefined;
  const known = decodedEntries.get(buffer);
  if (known !== undefined) return known ?? undefined;
  const decoded = decodeEntry(buffer);
  decodedEntries.set(buffer, decoded ?? null);
  return decoded;
}

const NOT_COPIED = Symbol('not copied');

/**
 * A caller's own copy of a decoded value: arrays and plain objects copied, dates copied, ObjectIds
 * shared (immutable); NOT_COPIED for any other kind (Binary, Decimal128, ...), which the caller
 * then decodes from the buffer instead. As isolated as a fresh decode, several times cheaper.
 */
function copyOf(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const copy = new Array(value.length);
    for (let index = 0; index < value.length; index += 1) {
      const item = copyOf(value[index]);
      if (item === NOT_COPIED) return NOT_COPIED;
      copy[index] = item;
    }
    return copy;
  }
  if (value instanceof ObjectId) return value;
  if (value instanceof Date) return new Date(value.getTime());
  if (Object.getPrototypeOf(value) !== Object.prototype) return NOT_COPIED;
  const copy: Record<string, unknown> = {};
  for (const key in value) {
    const child = copyOf((value as Record<string, unknown>)[key]);
    if (child === NOT_COPIED) return NOT_COPIED;
    copy[key] = child;
  }
  return copy;
}

/** A caller's own copy of the value of the encoded entry `buffer` (null for a negative entry). */
export function copyValue(buffer: Uint8Array): unknown {
  const decoded = decodeEntryOnce(buffer);
  if (!decoded) return null;
  const copy = copyOf(decoded.value);
  return copy === NOT_COPIED ? (decodeEntry(buffer)?.value ?? null) : copy;
}
