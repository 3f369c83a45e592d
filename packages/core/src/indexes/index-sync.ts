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

/** How many times sync re-reads the indexes after a peer's change got in the way before giving up. */
const MAX_ROUNDS = 5;

/** A drop that found nothing to drop: a peer (another instance syncing) dropped the index or the collection first. */
const GONE = new Set(['IndexNotFound', 'NamespaceNotFound']);
const GONE_CODES = new Set([27, 26]);

/**
 * A create that met a peer's change: an index of that name or key with other options (a peer's
 * rebuild half done, or an index a peer has not dropped yet), a build in progress, or the collection
 * a peer created implicitly at the same moment. Sync reads the indexes again and goes on from there.
 */
const CONFLICTS = new Set([
  'IndexOptionsConflict',
  'IndexKeySpecsConflict',
  'IndexAlreadyExists',
  'IndexBuildAlreadyInProgress',
  'IndexBuildAborted',
  'BackgroundOperationInProgressForNamespace',
  'NamespaceExists',
]);
const CONFLICT_CODES = new Set([85, 86, 68, 276, 12587, 48]);

function serverError(error: unknown): { codeName?: string; serverCode?: number } {
  return typeof error === 'object' && error !== null ? (error as { codeName?: string; serverCode?: number }) : {};
}

function isGone(error: unknown): boolean {
  const { codeName, serverCode } = serverError(error);
  return (codeName !== undefined && GONE.has(codeName)) || (serverCode !== undefined && GONE_CODES.has(serverCode));
}

function isConflict(error: unknown): boolean {
  const { codeName, serverCode } = serverError(error);
  return (codeName !== undefined && CONFLICTS.has(codeName)) || (serverCode !== undefined && CONFLICT_CODES.has(serverCode));
}

/**
 * Brings a collection's indexes in line with its declarations: creates the missing ones and reports
 * drift (missing, extra, different options). Nothing is dropped unless asked.
 *
 * Safe to run from several instances at once (each syncs at start-up): a drop of an index a peer
 * dropped first is done (not reported as this call's), a create of an index a peer created first
 * with the same spec is done, and an operation that meets a peer's half-done rebuild (an index of
 * that name with other options, a build in progress) is followed by a fresh read of the indexes and
 * another round from what is there, up to 5 rounds; every instance ends with the declared indexes
 * and none fails because of the others' work. A conflict no option allows this call to resolve (an
 * index it may not drop) still fails, after those rounds.
 */
export async function syncIndexes(
  collection: ScopedCollection,
  declarations: readonly IndexDeclaration[],
  options: SyncIndexesOptions = {},
): Promise<IndexSyncReport> {
  const drift = compareIndexes(declarations, await collection.listIndexes('syncIndexes'));
  const report: IndexSyncReport = { collection: collection.name, drift, created: [], dropped: [] };
  const record = (names: string[], name: string) => {
    if (!names.includes(name)) names.push(name);
  };
  let current = drift;
  /** The last failure a peer's change caused; thrown when the rounds run out before sync converged. */
  let conflict: unknown;
  for (let round = 1; ; round += 1) {
    const rebuild = options.rebuildDifferent ? new Set(current.different.map((difference) => difference.name)) : new Set<string>();
    const drops = [...(options.dropExtra ? current.extra : []), ...rebuild];
    const creates = declarations.filter((declaration) => current.missing.includes(declaration) || rebuild.has(declaration.name));
    if (drops.length === 0 && creates.length === 0) return report;
    if (round > MAX_ROUNDS) {
      if (conflict !== undefined) throw conflict;
      return report; // peers kept changing the indexes: what is left shows in the next sync's drift
    }
    for (const name of drops) {
      try {
        await collection.dropIndex('syncIndexes', name);
        record(report.dropped, name);
      } catch (error) {
        // Gone: a peer dropped it first, which is the state this drop was for.
        if (isGone(error)) continue;
        if (!isConflict(error)) throw error;
        conflict = error;
      }
    }
    for (const declaration of creates) {
      try {
        // An identical index a peer created meanwhile is no error: the server reports it exists.
        await collection.createIndex('syncIndexes', declaration.key as Document, creationOptions(declaration));
        record(report.created, declaration.name);
      } catch (error) {
        if (!isConflict(error)) throw error;
        conflict = error;
      }
    }
    // Continue from what is there now: a peer's half-done rebuild, or an index it dropped after us.
    current = compareIndexes(declarations, await collection.listIndexes('syncIndexes'));
  }
}
