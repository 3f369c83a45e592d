import type { Document } from 'mongodb';
import type { ScopedCollection } from '../collection/scoped-collection.js';
import type { IndexDeclaration } from '../indexes/index-declaration.js';

/** How much one index was used since the server started (from `$indexStats`). */
export interface IndexUsage {
  collection: string;
  index: string;
  accesses: number;
  since: Date | undefined;
  declared: boolean;
}

/**
 * Reads `$indexStats` of a collection: how often each index served a query since the server
 * started. An index declared but never used is a candidate to drop; one used but not declared is
 * drift (see `syncIndexes`).
 */
export async function indexUsageOf(collection: ScopedCollection, declared: readonly IndexDeclaration[]): Promise<IndexUsage[]> {
  const rows: Document[] = await collection.indexStats('indexUsage');
  const names = new Set(declared.map((index) => index.name));
  return rows
    .map((row) => ({
      collection: collection.name,
      index: String(row.name),
      accesses: Number(row.accesses?.ops ?? 0),
      since: row.accesses?.since instanceof Date ? row.accesses.since : undefined,
      declared: names.has(String(row.name)) || row.name === '_id_',
    }))
    .sort((a, b) => a.index.localeCompare(b.index));
}
