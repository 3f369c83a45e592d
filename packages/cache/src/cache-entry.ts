import { BSON } from '@caas-db/core';

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
