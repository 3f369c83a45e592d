import type { DataLayer, Document, Filter } from '@caas-db/core';
import type { CapturedChange } from './change-capture.js';
import type { Selection } from './selection.js';
import { type TenantCollection, tenantCollection } from './tenant-collection.js';

/** How recorded changes land in the restored tenant. */
export interface ReplayTarget {
  data: DataLayer;
  tenant: string;
  /** Turns an archived document into the one to write (tenant rewrite, your own references). */
  transform: (document: Document, collection: string) => Document;
  selection: Selection | undefined;
  /** Collections restored (changes of others are ignored). */
  collections: ReadonlySet<string>;
  /** The target id of a recorded change's `_id` (a restore that remaps ids). @default the id itself */
  mapId?: ((id: unknown) => unknown) | undefined;
}

/** The final state of each document a sequence of changes touched (`null`: deleted). */
export type FinalStates = Map<string, Map<string, Document | null>>;

/** A stable key of a document id (ObjectIds and other BSON values alike). */
export function idKey(id: unknown): string {
  return typeof id === 'object' && id !== null && 'toHexString' in id
    ? `o:${(id as { toHexString(): string }).toHexString()}`
    : `v:${JSON.stringify(id)}`;
}

/** What one change does to the restored tenant: the document's new state (`null`: gone). */
export interface ChangeEffect {
  collection: string;
  key: string;
  document: Document | null;
}

/**
 * The effect of a change on the restored tenant, or undefined when it has none (another
 * collection, a `gap`, an update whose document was gone at lookup, outside the selection).
 */
export function effectOf(
  change: CapturedChange,
  target: Pick<ReplayTarget, 'collections' | 'selection' | 'transform' | 'mapId'>,
): ChangeEffect | undefined {
  if (!target.collections.has(change.c) || change.op === 'gap') return undefined;
  if (change.op !== 'delete' && !change.d) return undefined;
  const document = change.d ? target.transform(change.d, change.c) : null;
  if (document && target.selection && !target.selection.matches(change.c, document)) return undefined;
  return { collection: change.c, key: idKey(target.mapId ? target.mapId(change.id) : change.id), document };
}

/** Records a change's effect in `finalStates` (verification's view of the catch-up). */
export function trackFinalState(
  change: CapturedChange,
  target: Pick<ReplayTarget, 'collections' | 'selection' | 'transform' | 'mapId'>,
  finalStates: FinalStates,
): void {
  const effect = effectOf(change, target);
  if (!effect) return;
  const states = finalStates.get(effect.collection) ?? new Map<string, Document | null>();
  finalStates.set(effect.collection, states);
  states.set(effect.key, effect.document);
}

/**
 * Applies changes in order, batched: consecutive changes to distinct documents of one collection
 * go out together (deletes of their ids, then inserts of their post-images), a change to a
 * document already in the batch flushes it first, so per-document order holds. Re-applying a
 * change is harmless (a post-image replaces the document, a delete of a missing id does nothing),
 * which is what makes replay from an overlapping start point, and a rerun after a crash, correct.
 * Updates without a post-image (deleted before the lookup) are skipped: their delete follows.
 */
export class ChangeReplayer {
  readonly #target: ReplayTarget;
  readonly #collections = new Map<string, TenantCollection>();
  #batch: { collection: string; ids: Set<string>; puts: Document[]; deletes: unknown[] } | undefined;
  /** Changes applied. */
  applied = 0;

  constructor(target: ReplayTarget) {
    this.#target = target;
  }

  async apply(change: CapturedChange): Promise<void> {
    const effect = effectOf(change, this.#target);
    if (!effect) return;
    const { collection, key, document } = effect;
    if (this.#batch && (this.#batch.collection !== collection || this.#batch.ids.has(key) || this.#batch.ids.size >= 500))
      await this.flush();
    this.#batch ??= { collection, ids: new Set(), puts: [], deletes: [] };
    this.#batch.ids.add(key);
    this.#batch.deletes.push(this.#target.mapId ? this.#target.mapId(change.id) : change.id);
    if (document) this.#batch.puts.push(document);
    this.applied += 1;
  }

  async flush(): Promise<void> {
    const batch = this.#batch;
    this.#batch = undefined;
    if (!batch) return;
    const target = this.#collectionOf(batch.collection);
    const selection = this.#target.selection;
    const byIds: Document = { _id: { $in: batch.deletes } };
    await target.deleteVerbatim((selection ? { $and: [byIds, selection.filter(batch.collection)] } : byIds) as Filter<Document>);
    await target.insertVerbatim(batch.puts);
  }

  #collectionOf(collection: string): TenantCollection {
    let target = this.#collections.get(collection);
    if (!target) {
      target = tenantCollection(this.#target.data, collection, this.#target.tenant);
      this.#collections.set(collection, target);
    }
    return target;
  }
}
