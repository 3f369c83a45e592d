import { createHash } from 'node:crypto';
import { type Document, ObjectId } from '@caas-db/core';

/** How a restore treats document ids: keep them, or give the copy ids of its own. */
export type IdMode = 'keep' | 'remap';

const HEX_ID = /(?<![0-9a-fA-F])[0-9a-f]{24}(?![0-9a-fA-F])/g;

/**
 * The one mapping of ids from a source tenant to a target tenant: `map(id)` for every ObjectId,
 * `document(doc)` for a whole document. Deterministic (a function of the two tenant ids and the id
 * only), so a rerun, a resumed run and the verification all compute the same ids.
 */
export interface IdRemap {
  /** The target tenant's id for a source id (values that are not ObjectIds are returned as they are). */
  map<Value>(id: Value): Value;
  /**
   * Every ObjectId of the document, at any depth (its `_id` and every reference), and the ids the
   * data model embeds in strings (`conversations.dedupe_key`, `settings.owner_key`,
   * `messages.thread.applied`, the recipient keys of `messages.content.encrypted_key`), mapped.
   */
  document(document: Document, collection: string): Document;
}

/**
 * Maps ObjectIds from `source` to `target`: the 4-byte timestamp and the 3-byte counter are kept,
 * and the 5-byte process value is replaced by one derived (SHA-256) from the two tenants and it. So
 * ids keep their creation second and, among ids of one process, their order (keyset pages and
 * `_id` tie-breaks see the same order), and a copy's ids never equal the source's (a collision
 * would need a derived process value equal to one in use in the same second with the same
 * counter: about 2^-40 per pair of process values).
 */
export function createIdRemap(source: string, target: string): IdRemap {
  const derived = new Map<string, Buffer>();
  const processValue = (bytes: Uint8Array): Buffer => {
    const key = Buffer.from(bytes).toString('hex');
    let value = derived.get(key);
    if (!value) {
      value = createHash('sha256').update(`caas-db/backup/id-remap/v1\0${source}\0${target}\0`).update(bytes).digest().subarray(0, 5);
      derived.set(key, value);
    }
    return value;
  };
  const mapObjectId = (id: ObjectId): ObjectId => {
    const bytes = id.id;
    return new ObjectId(Buffer.concat([bytes.subarray(0, 4), processValue(bytes.subarray(4, 9)), bytes.subarray(9, 12)]));
  };
  const mapHex = (text: string) => text.replace(HEX_ID, (hex) => mapObjectId(new ObjectId(hex)).toHexString());
  const visit = (value: unknown): unknown => {
    if (value instanceof ObjectId) return mapObjectId(value);
    if (Array.isArray(value)) return value.map(visit);
    if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value;
    const copy: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value as Record<string, unknown>)) copy[key] = visit(field);
    return copy;
  };
  return {
    map<Value>(id: Value): Value {
      return (id instanceof ObjectId ? mapObjectId(id) : id) as Value;
    },
    document(document, collection) {
      const mapped = visit(document) as Document;
      if (collection === 'conversations' && typeof mapped.dedupe_key === 'string') {
        const [kind, ...ids] = mapped.dedupe_key.split(':');
        // A direct conversation's key holds its two participants sorted: re-sort the mapped pair,
        // or createDirect would not find the conversation by it.
        mapped.dedupe_key =
          kind === 'direct' && ids.length === 2 ? `direct:${ids.map(mapHex).sort().join(':')}` : mapHex(mapped.dedupe_key);
      }
      if (collection === 'settings' && typeof mapped.owner_key === 'string') mapped.owner_key = mapHex(mapped.owner_key);
      // Recipient keys are named by the recipient's user id.
      const keys = collection === 'messages' ? mapped.content?.encrypted_key : undefined;
      if (keys !== null && typeof keys === 'object' && !Array.isArray(keys))
        mapped.content = {
          ...mapped.content,
          encrypted_key: Object.fromEntries(Object.entries(keys as Record<string, unknown>).map(([user, key]) => [mapHex(user), key])),
        };
      if (collection === 'messages' && Array.isArray(mapped.thread?.applied))
        mapped.thread = {
          ...mapped.thread,
          applied: mapped.thread.applied.map((entry: unknown) => (typeof entry === 'string' ? mapHex(entry) : entry)),
        };
      return mapped;
    },
  };
}

/** The identity mapping (ids kept). */
export const KEEP_IDS: IdRemap = { map: (id) => id, document: (document) => document };
