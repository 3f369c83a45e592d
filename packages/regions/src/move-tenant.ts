import { type DataLayer, type Document, NotFoundError } from '@caas-db/core';
import type { CallTracker } from './call-tracker.js';
import { TenantMoveError } from './errors.js';
import type { MovePhase, MoveRecord, MoveStore } from './move-store.js';
import { canonical, digestOf, type RelocationRepository, relocationOf } from './relocation.js';
import type { TenantRouter } from './tenant-router.js';

/** Options of `moveTenant`. */
export interface MoveOptions {
  /** Documents per read and write batch. @default 500 */
  batchSize?: number;
  /** Stops the move at the next batch; calling `moveTenant` again resumes it. */
  signal?: AbortSignal;
  /** Called after each batch and phase change (progress reporting). */
  onProgress?: (progress: { phase: MovePhase | 'deleting'; collection?: string; documents: number }) => void;
}

/** What a finished move did. */
export interface MoveReport {
  tenant: string;
  /** Cluster names. */
  from: string;
  to: string;
  /** The phase the move was resumed from, when it was. */
  resumedFrom: MovePhase | undefined;
  /** Documents written to the target in the copy phase (by this call). */
  copied: number;
  /** Documents written or deleted on the target by the final sync. */
  reconciled: number;
  /** Per collection: count and SHA-256 of the tenant's documents, equal on both clusters at the switch. */
  verified: Record<string, { count: number; hash: string }>;
  /** Documents deleted from the old cluster. */
  deleted: number;
}

interface MoveContext {
  tenant: string;
  /** The target cluster's name (a region). */
  to: string;
  directory: DataLayer;
  moves: MoveStore;
  router: TenantRouter;
  tracker: CallTracker;
  layerOf: (name: string) => DataLayer;
  options: MoveOptions;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs (or resumes) one tenant's move; see `RegionalDataLayer.moveTenant`. */
export async function moveTenant(context: MoveContext): Promise<MoveReport> {
  const { tenant, to, directory, moves, router, tracker, layerOf, options } = context;
  const batchSize = options.batchSize ?? 500;
  const client = await directory.clients.findByTenantId(tenant);
  if (!client) throw new NotFoundError('clients', `tenant_id ${tenant}`);
  let record = await moves.get(tenant);
  const resumedFrom = record?.phase;
  if (record && record.to !== to) throw new TenantMoveError(tenant, record.phase, `a move to ${record.to} is under way; finish it first`);
  if (!record) {
    if (client.region === to) throw new TenantMoveError(tenant, 'start', `the tenant already lives in ${to}`);
    record = await moves.start(tenant, client.region, to, new Date());
  }
  const { from } = record;
  const source = layerOf(from);
  const target = layerOf(to);
  // The tenant-owned collections of the data model (and of repositories built on the source).
  const collections = [...source.tenantOwnedCollections()].sort();
  const on = (layer: DataLayer) => new Map(collections.map((name) => [name, relocationOf(layer, name, tenant)]));
  const sources = on(source);
  const targets = on(target);
  const report: MoveReport = { tenant, from, to, resumedFrom, copied: 0, reconciled: 0, verified: {}, deleted: 0 };
  let phase: MovePhase = router.routeOf(tenant, client.region, record).move?.phase ?? record.phase;

  const publish = async (next: MovePhase, fields: Document = {}) => {
    await moves.set(tenant, { phase: next, ...fields });
    phase = next;
    router.set(tenant, router.routeOf(tenant, next === 'switched' ? to : from, { ...(record as MoveRecord), phase: next }));
    options.onProgress?.({ phase: next, documents: 0 });
  };
  const checkAbort = () => {
    if (options.signal?.aborted) throw new TenantMoveError(tenant, phase, 'aborted; call moveTenant again to resume');
  };
  router.set(tenant, router.routeOf(tenant, client.region, { ...record, phase }));

  try {
    if (phase === 'copying') {
      for (const name of collections) {
        let after = record.checkpoints[name];
        for (;;) {
          checkAbort();
          const documents = await (sources.get(name) as RelocationRepository).batch(after, batchSize);
          if (documents.length === 0) break;
          await (targets.get(name) as RelocationRepository).put(documents);
          after = documents[documents.length - 1]?._id;
          report.copied += documents.length;
          await moves.set(tenant, { [`checkpoints.${name}`]: after });
          options.onProgress?.({ phase, collection: name, documents: documents.length });
          if (documents.length < batchSize) break;
        }
      }
    }
    if (phase === 'copying' || phase === 'fencing' || phase === 'fenced') {
      // Fence: calls admitted before it finish (they may write more than once); new calls wait.
      await publish('fencing');
      await delay(router.cacheMS);
      await tracker.drained(tenant);
      await publish('fenced');
      // Other processes stop writing within their route cache time.
      await delay(router.cacheMS);
      for (const name of collections) {
        checkAbort();
        report.reconciled += await reconcile(
          sources.get(name) as RelocationRepository,
          targets.get(name) as RelocationRepository,
          batchSize,
        );
      }
      for (const name of collections) {
        checkAbort();
        const [left, right] = await Promise.all([
          digestOf(sources.get(name) as RelocationRepository, batchSize),
          digestOf(targets.get(name) as RelocationRepository, batchSize),
        ]);
        if (left.count !== right.count || left.hash !== right.hash)
          throw new TenantMoveError(tenant, phase, `${name} differs after the final sync (${left.count} vs ${right.count} documents)`);
        report.verified[name] = left;
      }
      await moves.set(tenant, { verified: report.verified });
      // The switch: the directory names the new region first, then the record follows.
      await directory.clients.update(client._id, { region: to });
      await publish('switched');
    }
    for (const name of collections) {
      checkAbort();
      const deleted = await (sources.get(name) as RelocationRepository).removeAfter(undefined);
      report.deleted += deleted;
      options.onProgress?.({ phase: 'deleting', collection: name, documents: deleted });
    }
    await moves.finish(tenant);
    router.set(tenant, { home: to, move: undefined });
    return report;
  } catch (error) {
    // Writes are never left held by a move that stopped before its switch.
    if (phase === 'fencing' || phase === 'fenced') await publish('copying').catch(() => undefined);
    throw error;
  }
}

/**
 * Makes the target's documents equal to the source's, both read in `_id` order batch by batch:
 * documents missing or different on the target are written, those only on the target deleted.
 * @returns the documents written or deleted.
 */
async function reconcile(source: RelocationRepository, target: RelocationRepository, batchSize: number): Promise<number> {
  let changed = 0;
  let after: unknown;
  for (;;) {
    const documents = await source.batch(after, batchSize);
    const last = documents[documents.length - 1]?._id;
    if (last === undefined) break;
    const existing = new Map<string, { id: unknown; text: string }>();
    // The target's documents in the same _id range (it may hold ones the source deleted since the copy).
    let targetAfter = after;
    for (;;) {
      const page = await target.batch(targetAfter, batchSize, last);
      for (const document of page) existing.set(canonical({ _id: document._id }), { id: document._id, text: canonical(document) });
      if (page.length < batchSize) break;
      targetAfter = page[page.length - 1]?._id;
    }
    const stale = documents.filter((document) => existing.get(canonical({ _id: document._id }))?.text !== canonical(document));
    for (const document of documents) existing.delete(canonical({ _id: document._id }));
    const extra = [...existing.values()].map((entry) => entry.id);
    await target.put(stale);
    await target.removeIds(extra);
    changed += stale.length + extra.length;
    after = last;
    if (documents.length < batchSize) break;
  }
  changed += await target.removeAfter(after);
  return changed;
}
