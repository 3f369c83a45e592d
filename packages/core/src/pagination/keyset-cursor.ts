import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { BSON, type Document, ObjectId } from 'mongodb';

const { EJSON } = BSON;

import { CursorError } from '../errors.js';

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
  /** Fingerprint of the query the cursor belongs to. */
  q: string;
  /** The sort value of the last item, EJSON-encoded (absent when sorting by `_id`). */
  k?: unknown;
  /** The `_id` of the last item. */
  i: string;
}

/**
 * Signs and checks opaque keyset cursors. A cursor carries the last item's sort value and `_id`,
 * and a fingerprint of the query it continues; an HMAC makes tampering detectable. Give every
 * instance of a service the same `secret` so that a cursor issued by one is accepted by another.
 */
export class KeysetCursorCodec {
  readonly #secret: Buffer;

  /** @param secret - at least 32 bytes; a random one (valid in this process only) when omitted. */
  constructor(secret?: string) {
    this.#secret = secret === undefined ? randomBytes(32) : Buffer.from(secret, 'utf8');
  }

  /** A fingerprint of a query: its collection, filter and sort. A cursor works only for the same fingerprint. */
  static fingerprint(collection: string, filter: Document, sort: PageSort): string {
    return createHash('sha256')
      .update(collection)
      .update('\0')
      .update(EJSON.stringify(filter, { relaxed: false }))
      .update('\0')
      .update(`${sort.field}:${sort.direction}`)
      .digest('base64url')
      .slice(0, 22);
  }

  #mac(body: string): Buffer {
    return createHmac('sha256', this.#secret).update(body).digest().subarray(0, 16);
  }

  /** Encodes the position after `last`. */
  encode(fingerprint: string, sort: PageSort, last: Document): string {
    const payload: CursorPayload = { q: fingerprint, i: String(last._id) };
    if (sort.field !== '_id') payload.k = EJSON.serialize({ v: last[sort.field] }, { relaxed: false }).v;
    const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
    return `${body}.${this.#mac(body).toString('base64url')}`;
  }

  /**
   * Decodes a cursor for the query with `fingerprint`.
   * @throws {CursorError} when it is malformed, tampered with, or issued for another query.
   */
  decode(cursor: unknown, fingerprint: string, sort: PageSort): { value: unknown; id: ObjectId } {
    if (typeof cursor !== 'string' || cursor.length > 4096) throw new CursorError('The cursor must be a string of at most 4096 characters');
    const [body, mac, extra] = cursor.split('.');
    if (!body || !mac || extra !== undefined) throw new CursorError('The cursor is malformed');
    const expected = this.#mac(body);
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new CursorError('The cursor was altered or was issued by another deployment');
    }
    let payload: CursorPayload;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as CursorPayload;
    } catch (error) {
      throw new CursorError('The cursor is malformed', { cause: error });
    }
    if (payload.q !== fingerprint) throw new CursorError('The cursor belongs to another query (a different filter, sort or collection)');
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
