import { type ArchiveTarget, type KeyProvider, listArchives, openArchive } from '@caas-db/archive';
import { BSON, type DataLayer, type Document } from '@caas-db/core';
import type { BackupMetadata } from './backup.js';
import { type CapturedChange, compareClusterTimes } from './change-capture.js';
import { BackupNotFoundError, JournalGapError } from './errors.js';
import { createIdRemap, type IdMode, KEEP_IDS } from './id-remap.js';
import { JOURNAL_STREAM, type JournalSegmentMetadata, journalPrefix, parseClusterTime } from './journal.js';
import { ChangeReplayer } from './replay.js';
import { type RestoreResult, restoreTenantBackup } from './restore.js';
import { rewriteTenant } from './rewrite.js';

/** The moment to restore to: a wall-clock time, or an exact cluster time (`BSON.Timestamp`) from the journal. */
export type PointInTime = Date | BSON.Timestamp;

/** Options of {@link restoreToPointInTime}. */
export interface PointInTimeOptions {
  data: DataLayer;
  backups: ArchiveTarget;
  journals: ArchiveTarget;
  keyProvider: KeyProvider;
  backupPrefix: string;
  journalPrefix: string;
  sourceTenant: string;
  tenant: string;
  to: PointInTime;
  checkpoints: ArchiveTarget | undefined;
  /** `remap`: the copy (another tenant id) gets ids of its own. @default 'keep' */
  ids?: IdMode | undefined;
}

/** What a point-in-time recovery did. */
export interface PointInTimeResult {
  backup: string;
  restore: RestoreResult;
  segments: number;
  changesReplayed: number;
  to: string;
}

/**
 * Whether a change happened at or before `to`. A cluster time compares exactly; a date compares
 * with the event's wall time where the server reports one (MongoDB 6.0+), else with its cluster
 * time's seconds (so every change of the second `to` falls in counts as before it).
 */
function atOrBefore(change: CapturedChange, to: PointInTime): boolean {
  if (to instanceof BSON.Timestamp) return compareClusterTimes(change.ct, to) <= 0;
  if (change.wt instanceof Date) return change.wt.getTime() <= to.getTime();
  return change.ct.t <= Math.floor(to.getTime() / 1000);
}

function wallSecondsOf(to: PointInTime): number {
  return to instanceof BSON.Timestamp ? to.t : to.getTime() / 1000;
}

/**
 * Brings a tenant to its state at `to`: the newest full backup consistent before `to`, restored in
 * replace mode, then every journal change from that backup's capture start up to `to`, in order.
 * @throws {BackupNotFoundError} when no backup is old enough.
 * @throws {JournalGapError} when the journal does not cover the whole span (it started later, has a
 *   gap, or has not caught up to `to` yet).
 */
export async function restoreToPointInTime(options: PointInTimeOptions): Promise<PointInTimeResult> {
  const { to, sourceTenant, tenant } = options;
  const toSeconds = wallSecondsOf(to);
  const backups = (await listArchives(options.backups, `${options.backupPrefix}/${sourceTenant}/`))
    .map((listing) => ({ listing, metadata: listing.metadata as unknown as BackupMetadata }))
    .filter(({ metadata }) => metadata.kind === 'caas-db-tenant-backup' && metadata.tenant === sourceTenant)
    // A cluster time has second resolution: a backup qualifies when it finished in an earlier second.
    .filter(({ metadata }) =>
      to instanceof BSON.Timestamp
        ? Math.floor(Date.parse(metadata.consistency.consistentAt) / 1000) < to.t
        : Date.parse(metadata.consistency.consistentAt) <= to.getTime(),
    );
  const chosen = backups.at(-1);
  if (!chosen) throw new BackupNotFoundError(`No backup of tenant ${JSON.stringify(sourceTenant)} is consistent before ${describe(to)}`);
  const captureStart = parseClusterTime(chosen.metadata.consistency.captureStart);

  const segments = (await listArchives(options.journals, journalPrefix(options.journalPrefix, sourceTenant)))
    .map((listing) => ({ listing, metadata: listing.metadata as unknown as JournalSegmentMetadata }))
    .filter(({ metadata }) => metadata.kind === 'caas-db-tenant-journal')
    .sort((a, b) => a.metadata.seq - b.metadata.seq);
  // The segments of the chain that covers the backup's capture start, up to the first that reaches `to`.
  const chainStarts = [...new Set(segments.map(({ metadata }) => metadata.chainStart))];
  const chain = chainStarts.filter((start) => compareClusterTimes(parseClusterTime(start), captureStart) <= 0).at(-1);
  if (chain === undefined)
    throw new JournalGapError(
      sourceTenant,
      `the journal began after backup ${chosen.listing.name} started; take a backup after the journal starts`,
    );
  const used = segments.filter(({ metadata }) => metadata.chainStart === chain);
  const gap = segments.find(
    ({ metadata }) => metadata.gap && metadata.seq > (used[0]?.metadata.seq ?? 0) && Date.parse(metadata.gap.at) / 1000 <= toSeconds,
  );
  if (gap) throw new JournalGapError(sourceTenant, `segment ${gap.metadata.seq}: ${gap.metadata.gap?.reason ?? 'gap'}`);
  const caughtUp = Math.max(0, ...used.map(({ metadata }) => Date.parse(metadata.caughtUpAt) / 1000));
  if (caughtUp < toSeconds)
    throw new JournalGapError(
      sourceTenant,
      `the journal has caught up only to ${new Date(caughtUp * 1000).toISOString()}, before ${describe(to)}`,
    );

  // Changes in the window, read once to find gaps before anything is written, then again to apply.
  const window = async function* (): AsyncGenerator<CapturedChange> {
    for (const { listing } of used) {
      const segment = await openArchive({ target: options.journals, keyProvider: options.keyProvider, name: listing.name });
      for await (const document of segment.documents(JOURNAL_STREAM)) {
        const change = document as unknown as CapturedChange;
        // Earlier changes are in what the backup's scan read; re-applying changes of the backup's
        // first second is harmless (each re-applies a document's own later state).
        if (compareClusterTimes(change.ct, captureStart) < 0 || !atOrBefore(change, to)) continue;
        yield change;
      }
    }
  };
  for await (const change of window())
    if (change.op === 'gap')
      throw new JournalGapError(sourceTenant, `${change.c} at ${change.ct.t}.${change.ct.i}: ${change.reason ?? 'unreplayable change'}`);

  const reader = await openArchive({ target: options.backups, keyProvider: options.keyProvider, name: chosen.listing.name });
  const restore = await restoreTenantBackup({
    data: options.data,
    reader,
    checkpoints: options.checkpoints,
    tenant,
    mode: 'replace',
    selection: undefined,
    rewrite: undefined,
    collections: undefined,
    ids: options.ids,
    verify: false,
    preflight: true,
  });
  // The same id mapping the restore used (deterministic), so replayed changes land on its documents.
  const remap = options.ids === 'remap' ? createIdRemap(sourceTenant, tenant) : KEEP_IDS;
  const transform = (document: Document, collection: string) => remap.document(rewriteTenant(document, sourceTenant, tenant), collection);
  const replayer = new ChangeReplayer({
    data: options.data,
    tenant,
    transform,
    selection: undefined,
    collections: new Set(chosen.metadata.collections),
    ...(options.ids === 'remap' && { mapId: (id: unknown) => remap.map(id) }),
  });
  for await (const change of window()) await replayer.apply(change);
  await replayer.flush();
  return { backup: chosen.listing.name, restore, segments: used.length, changesReplayed: replayer.applied, to: describe(to) };
}

function describe(to: PointInTime): string {
  return to instanceof BSON.Timestamp ? `cluster time ${to.t}.${to.i}` : to.toISOString();
}
