import type { CreateIndexesOptions, Document } from 'mongodb';
import type { ScopedCollection } from '../collection/scoped-collection.js';
import { compareIndexes, type IndexDeclaration, type IndexDrift } from './index-declaration.js';

/** Options of {@link syncIndexes}. */
export interface SyncIndexesOptions {
  /** Drop indexes no declaration names. @default false */
  dropExtra?: boolean;
  /** Drop and recreate indexes whose key or options differ from their declaration. @default false */
  rebuildDifferent?: boolean;
}

/** What {@link syncIndexes} found and did. */
export interface IndexSyncReport {
  collection: string;
  /** Drift found before any change. */
  drift: IndexDrift;
  created: string[];
  dropped: string[];
}

function creationOptions(declaration: IndexDeclaration): CreateIndexesOptions {
  return {
    name: declaration.name,
    ...(declaration.unique !== undefined && { unique: declaration.unique }),
    ...(declaration.sparse !== undefined && { sparse: declaration.sparse }),
    ...(declaration.expireAfterSeconds !== undefined && { expireAfterSeconds: declaration.expireAfterSeconds }),
    ...(declaration.partialFilterExpression !== undefined && { partialFilterExpression: declaration.partialFilterExpression }),
  };
}

/**
 * Brings a collection's indexes in line with its declarations: creates the missing ones and reports
 * drift (missing, extra, different options). Nothing is dropped unless asked.
 */
export async function syncIndexes(
  collection: ScopedCollection,
  declarations: readonly IndexDeclaration[],
  options: SyncIndexesOptions = {},
): Promise<IndexSyncReport> {
  const existing = await collection.listIndexes('syncIndexes');
  const drift = compareIndexes(declarations, existing);
  const report: IndexSyncReport = { collection: collection.name, drift, created: [], dropped: [] };
  const rebuild = options.rebuildDifferent ? new Set(drift.different.map((difference) => difference.name)) : new Set<string>();
  for (const name of [...(options.dropExtra ? drift.extra : []), ...rebuild]) {
    await collection.dropIndex('syncIndexes', name);
    report.dropped.push(name);
  }
  for (const declaration of declarations) {
    if (drift.missing.includes(declaration) || rebuild.has(declaration.name)) {
      await collection.createIndex('syncIndexes', declaration.key as Document, creationOptions(declaration));
      report.created.push(declaration.name);
    }
  }
  return report;
}
