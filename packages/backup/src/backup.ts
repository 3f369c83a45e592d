import { type ArchiveManifest, type ArchiveTarget, createArchiveWriter, type KeyProvider } from '@caas-db/archive';
import { BSON, type DataLayer } from '@caas-db/core';
import { type CapturedChange, TenantChangeCapture } from './change-capture.js';
import { captureIsolationOf } from './isolation.js';
import { tenantModelOf } from './model.js';
import { tenantCollection } from './tenant-collection.js';

/** The archive stream holding the changes a backup caught up on while it scanned. */
export const CHANGES_STREAM = '_changes';
/** Version of the backup layout inside the archive (streams per collection + `_changes`). */
export const BACKUP_LAYOUT_VERSION = 1;
/** This library's version, recorded in every backup. */
export const LIBRARY_VERSION = '0.1.0';

/** How far back (seconds) a capture starts before its first read: replaying earlier changes is harmless. */
export const CAPTURE_OVERLAP_SECONDS = 2;

/** What `metadata` of a backup archive holds. */
export interface BackupMetadata {
  kind: 'caas-db-tenant-backup';
  layout: number;
  library: string;
  tenant: string;
  collections: string[];
  schemaVersions: Record<string, number>;
  counts: Record<string, number>;
  startedAt: string;
  finishedAt: string;
  consistency: {
    /** `change-stream-catch-up`: the scan plus the changes recorded during it give the state at `consistentAt`. */
    method: 'change-stream-catch-up' | 'none';
    /** The second the backup started (`t.0`): journal replay for point-in-time recovery starts here. */
    captureStart: string;
    /** Wall time (this process) when the catch-up had drained every stream. */
    consistentAt: string;
    /** Changes recorded during the scan. */
    changes: number;
    /** Changes the server reported without naming their document: the backup is fuzzy for them. */
    gaps: number;
    /** Resume token per collection after the catch-up. */
    tokens: Record<string, unknown>;
    /**
     * How the catch-up saw deletes: `database` (the tenant's own database: all of them),
     * `pre-images` (matched on their pre-image's tenant), or `not-captured` (shared collections
     * without pre-images: a delete names no tenant, so none is read; a document deleted after the
     * scan read it is in the backup). Absent in backups written before this field existed.
     */
    deletes: 'database' | 'pre-images' | 'not-captured';
    /** Time-series collections, read by the scan only (no change stream opens on them). */
    notCaughtUp?: string[];
  };
}

/** Options of {@link createTenantBackup}. */
export interface CreateBackupOptions {
  data: DataLayer;
  target: ArchiveTarget;
  keyProvider: KeyProvider;
  tenant: string;
  name: string;
  collections: readonly string[];
  /** The tenant's database for change streams (database-per-tenant). */
  database?: string | undefined;
  pageSize: number;
  chunkBytes?: number | undefined;
  consistency: 'change-stream-catch-up' | 'none';
  /** Called after each page; a returned promise is awaited before the next page is read. */
  onProgress?: ((progress: { collection: string; documents: number }) => void | Promise<void>) | undefined;
}

/** What a backup wrote. */
export interface BackupResult {
  name: string;
  manifest: ArchiveManifest;
  metadata: BackupMetadata;
  documents: number;
  storedBytes: number;
  plainBytes: number;
  durationMS: number;
}

/**
 * Writes one tenant's documents of every collection into a new archive, page by page in `_id`
 * order through the data layer's pipeline (so memory holds one page and one chunk), while a change
 * capture records what changes meanwhile; the archive is consistent as of the moment the capture
 * drained.
 */
export async function createTenantBackup(options: CreateBackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const startedAt = new Date();
  const { data, tenant } = options;
  const model = tenantModelOf(data);
  const writer = await createArchiveWriter({
    target: options.target,
    keyProvider: options.keyProvider,
    name: options.name,
    kind: 'backup',
    ...(options.chunkBytes !== undefined && { chunkBytes: options.chunkBytes }),
  });
  // Point-in-time recovery replays the journal from the second the backup started: everything
  // earlier is in what the scan read.
  const captureStart = new BSON.Timestamp({ t: Math.floor(startedAt.getTime() / 1000), i: 0 });
  // Deletes name no tenant: the capture asks for them only where it can attribute them (see
  // CaptureIsolation), so another tenant's changes never reach the backup.
  const report =
    options.consistency === 'change-stream-catch-up' ? await captureIsolationOf(data, options.collections, options.database) : undefined;
  const isolation = report?.isolation;
  const capture = report
    ? new TenantChangeCapture({
        client: data.client,
        tenant,
        ...(options.database !== undefined && { database: options.database }),
        collections: report.watchable,
        isolation: report.isolation,
      })
    : undefined;
  let changes = 0;
  let gaps = 0;
  const record = async (change: CapturedChange) => {
    changes += 1;
    if (change.op === 'gap') gaps += 1;
    await writer.write(CHANGES_STREAM, change as unknown as Record<string, unknown>);
  };
  const counts: Record<string, number> = {};
  try {
    // The streams start when they open (not earlier: replaying changes from before the scan over
    // documents the scan read later could undo changes the server did not report replayably).
    // Reading them once now opens their cursors on the server, before the first page is read.
    await writer.declareStream(CHANGES_STREAM);
    await capture?.open({ tokens: {} });
    await capture?.drain(record);
    for (const collection of options.collections) {
      await writer.declareStream(collection);
      const source = tenantCollection(data, collection, tenant);
      let count = 0;
      let after: unknown;
      for (;;) {
        const page = await source.scanPage(after, options.pageSize);
        for (const document of page) await writer.write(collection, document);
        count += page.length;
        await options.onProgress?.({ collection, documents: count });
        if (page.length < options.pageSize) break;
        after = page[page.length - 1]?._id;
      }
      counts[collection] = count;
    }
    // Drain until a whole round finds nothing new (every stream at the same moment), or give up
    // after a few rounds under sustained writes: each stream is then read to its end once more, and
    // a change landing between two collections' final reads may be in one and not the other.
    if (capture) for (let round = 0; round < 5 && (await capture.drain(record)) > 0; round += 1);
    const metadata: BackupMetadata = {
      kind: 'caas-db-tenant-backup',
      layout: BACKUP_LAYOUT_VERSION,
      library: LIBRARY_VERSION,
      tenant,
      collections: [...options.collections],
      schemaVersions: Object.fromEntries(options.collections.map((collection) => [collection, model.get(collection)?.schemaVersion ?? 1])),
      counts,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      consistency: {
        method: options.consistency,
        captureStart: `${captureStart.t}.${captureStart.i}`,
        consistentAt: new Date().toISOString(),
        changes,
        gaps,
        tokens: capture ? (JSON.parse(JSON.stringify(capture.tokens)) as Record<string, unknown>) : {},
        deletes: isolation === 'database' || isolation === 'pre-images' ? isolation : 'not-captured',
        ...(report && report.timeSeries.length > 0 && { notCaughtUp: report.timeSeries }),
      },
    };
    const manifest = await writer.finish(metadata as unknown as Record<string, unknown>);
    const stats = writer.stats;
    return {
      name: options.name,
      manifest,
      metadata,
      documents: Object.values(counts).reduce((sum, count) => sum + count, 0),
      storedBytes: stats.storedBytes,
      plainBytes: stats.plainBytes,
      durationMS: performance.now() - started,
    };
  } catch (error) {
    await writer.abort().catch(() => undefined);
    throw error;
  } finally {
    await capture?.close();
  }
}
