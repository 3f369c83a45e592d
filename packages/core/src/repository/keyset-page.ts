import type { Document, FindOptions } from 'mongodb';
import { ValidationError } from '../errors.js';
import { KeysetCursorCodec, keysetFilter, type Page, type PageSort, sortDocument } from '../pagination/keyset-cursor.js';
import { DEFAULT_PAGE_SIZE, type ParsedReadOptions } from './read-options.js';

/** What reading a keyset page needs of its repository. */
export interface KeysetPageSource {
  /** Sends the page's find (through the repository's scoped collection). */
  find(query: Document, options: FindOptions): Promise<Document[]>;
  cursors: KeysetCursorCodec;
  /** What a cursor is bound to besides the query: the collection and the tenant. */
  cursorScope: string;
  /** The fields pages may be sorted by. */
  sortable: ReadonlySet<string>;
}

/**
 * Reads one keyset page of `filter` (already scoped and validated): the items after the cursor's
 * position in the page's order, and the cursor of the next page when there is one. The query key a
 * cursor is bound to is computed only when a cursor is decoded or encoded.
 * @throws {ValidationError} for a sort field that is not sortable; {@link CursorError} for a bad cursor.
 */
export async function readKeysetPage<T>(
  source: KeysetPageSource,
  filter: Document,
  options: Omit<ParsedReadOptions, 'projection'> & { projection?: Document | undefined },
): Promise<Page<T>> {
  const sort: PageSort = options.sort ?? { field: '_id', direction: 'desc' };
  if (!source.sortable.has(sort.field)) {
    throw new ValidationError('options', [
      { path: 'sort.field', message: `must be one of ${[...source.sortable].join(', ')}`, code: 'invalid_value' },
    ]);
  }
  const projection = options.projection;
  if (projection && sort.field !== '_id') projection[sort.field] = 1;
  const limit = options.limit ?? DEFAULT_PAGE_SIZE;
  let fingerprint: string | undefined;
  const fingerprintOf = () => {
    fingerprint ??= KeysetCursorCodec.fingerprint(source.cursorScope, filter, sort);
    return fingerprint;
  };
  const query = options.cursor
    ? { $and: [filter, keysetFilter(sort, source.cursors.decode(options.cursor, fingerprintOf(), sort))] }
    : filter;
  const rows = await source.find(query, { sort: sortDocument(sort), limit: limit + 1, ...(projection && { projection }) });
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items as T[], nextCursor: rows.length > limit && last ? source.cursors.encode(fingerprintOf(), sort, last) : null };
}
