import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import { BSON, type Document, ObjectId } from 'mongodb';

const { EJSON } = BSON;

import { CursorError } from '../errors.js';
import { canonicalKey } from '../schema/canonical-key.js';

/** The order of a page: one field (or `_id` alone), with `_id` as the tiebreak in the same direction. */
export interface PageSort<Field extends string = string> {
  field: Field | '_id';
  direction: 'asc' | 'desc';
}

/** One page of a keyset-paginated list. */
export interface Page<T> {
  items: T[];
  /** Pass it as `cursor` to read the next page; null on the last page. */
  nextCursor: string | null;
}

/** Options every list method takes. */
export interface PageOptions {
  /** Items per page, 1 to 500. @default 50 */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string | null;
}

interface CursorPayload {
  /** A short tag of the query the cursor belongs to (diagnostics only: the MAC binds the query). */
  q: string;
  /** The sort value of the last item, EJSON-encoded (absent when sorting by `_id`). */
  k?: unknown;
  /** The `_id` of the last item. */
  i: string;
}

/** FNV-1a over a string, as 8 hex digits: a cheap tag, not a security measure. */
function shortTag(text: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}

/**
 * Signs and checks opaque keyset cursors. A cursor carries the last item's sort value and `_id`;
 * one HMAC over the cursor and the query it continues (collection, tenant, filter, sort) makes
 * tampering and reuse for another query detectable. Give every instance of a service the same
 * `secret` so that a cursor issued by one is accepted by another.
 */
export class KeysetCursorCodec {
  readonly #secret: KeyObject;

  /** @param secret - at least 32 bytes; a random one (valid in this process only) when omitted. */
  constructor(secret?: string) {
    this.#secret = createSecretKey(secret === undefined ? randomBytes(32) : Buffer.from(secret, 'utf8'));
  }

  /**
   * The key of a query: its collection (and tenant), filter and sort, as an unambiguous string. A
   * cursor works only for the same key. Computed only when a cursor is encoded or decoded.
   */
  static fingerprint(collection: string, filter: Document, sort: PageSort): string {
    return `${JSON.stringify(collection)}|${canonicalKey(filter)}|${sort.field}:${sort.direction}`;
  }

  #mac(fingerprint: string, body: string): Buffer {
    return createHmac('sha256', this.#secret).update(fingerprint).update('\0').update(body).digest().subarray(0, 16);
  }

  /** Encodes the position after `last`. */
  encode(fingerprint: string, sort: PageSort, last: Document): string {
    const payload: CursorPayload = { q: shortTag(fingerprint), i: String(last._id) };
    if (sort.field !== '_id') payload.k = EJSON.serialize({ v: last[sort.field] }, { relaxed: false }).v;
    const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
    return `${body}.${this.#mac(fingerprint, body).toString('base64url')}`;
  }

  /**
   * Decodes a cursor for the query with `fingerprint`.
   * @throws {CursorError} when it is malformed, tampered with, or issued for another query.
   */
  decode(cursor: unknown, fingerprint: string, sort: PageSort): { value: unknown; id: ObjectId } {
    if (typeof cursor !== 'string' || cursor.length > 4096) throw new CursorError('The cursor must be a string of at most 4096 characters');
    const [body, mac, extra] = cursor.split('.');
    if (!body || !mac || extra !== undefined) throw new CursorError('The cursor is malformed');
    let payload: CursorPayload | undefined;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as CursorPayload;
    } catch {
      payload = undefined;
    }
    const expected = this.#mac(fingerprint, body);
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      // The MAC binds the query; the tag only tells the two failures apart for the message.
      if (payload && typeof payload === 'object' && payload.q !== shortTag(fingerprint))
        throw new CursorError('The cursor belongs to another query (a different filter, sort or collection)');
      throw new CursorError('The cursor was altered or was issued by another deployment');
    }
    if (!payload || typeof payload !== 'object' || typeof payload.i !== 'string') throw new CursorError('The cursor is malformed');
    if (!ObjectId.isValid(payload.i) || payload.i.length !== 24) throw new CursorError('The cursor is malformed');
    const value = sort.field === '_id' ? undefined : EJSON.deserialize({ v: payload.k }, { relaxed: false }).v;
    return { value, id: ObjectId.createFromHexString(payload.i) };
  }
}

/** The filter that selects what comes after a decoded cursor position. */
export function keysetFilter(sort: PageSort, position: { value: unknown; id: ObjectId }): Document {
  const beyond = sort.direction === 'desc' ? '$lt' : '$gt';
  if (sort.field === '_id') return { _id: { [beyond]: position.id } };
  return {
    $or: [{ [sort.field]: { [beyond]: position.value } }, { [sort.field]: position.value, _id: { [beyond]: position.id } }],
  };
}

/** The driver sort document of a page sort. */
export function sortDocument(sort: PageSort): Record<string, 1 | -1> {
  const direction = sort.direction === 'desc' ? -1 : 1;
  return sort.field === '_id' ? { _id: direction } : { [sort.field]: direction, _id: direction };
}
