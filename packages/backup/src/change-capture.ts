import { BSON, type DataClient, type Document } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import type { ChangeStream, ChangeStreamOptions } from 'mongodb';

/** One change to a tenant's document, as a journal or a backup's catch-up stores it. */
export interface CapturedChange {
  /** The collection. */
  c: string;
  /**
   * `insert` / `replace` / `update` carry the document (`d`, the post-image), `delete` its `_id`;
   * `gap` marks an event the journal cannot replay (a drop, an invalidation, an update the server
   * reported without naming its document): a restore past it must fail.
   */
  op: 'insert' | 'replace' | 'update' | 'delete' | 'gap';
  /** The document's `_id` (absent for `gap`). */
  id?: unknown;
  /** The document after the change (inserts, replacements, updates). */
  d?: Document;
  /** The event's cluster time (orders events across collections; second resolution plus a counter). */
  ct: BSON.Timestamp;
  /** The event's wall time, when the server reports it (MongoDB 6.0+). */
  wt?: Date;
  /** Why a `gap` is one. */
  reason?: string;
}

/**
 * Where a capture starts: a resume token per collection, else the cluster time `startAt`, else (no
 * `startAt`) the moment its stream opens.
 */
export interface CapturePosition {
  tokens: Record<string, Document | null>;
  startAt?: BSON.Timestamp | undefined;
}

/** Options of {@link TenantChangeCapture}. */
export interface ChangeCaptureOptions {
  client: DataClient;
  tenant: string;
  /** The database holding the tenant's collections (its own under database-per-tenant). */
  database?: string;
  collections: readonly string[];
  /**
   * `updateLookup` (default) reads the document when the event is delivered; `whenAvailable` uses the
   * post-image stored with the event (collections with `changeStreamPreAndPostImages`, MongoDB 6.0+),
   * exact at the event's time.
   */
  fullDocument?: 'updateLookup' | 'whenAvailable';
  /** How long an idle stream's read waits for events. @default 100 */
  maxAwaitTimeMS?: number;
  /**
   * How the streams tell the tenant's events from other tenants' (see {@link CaptureIsolation}).
   * @default 'fields'
   */
  isolation?: CaptureIsolation;
}

/**
 * How a capture knows an event is its tenant's, which decides whether it can see deletes:
 * - `database`: the streams' database holds only this tenant (database-per-tenant): every event is
 *   the tenant's, deletes included.
 * - `pre-images`: the collections keep pre-images (`changeStreamPreAndPostImages`, MongoDB 6.0+): a
 *   delete is matched on its pre-image's `tenant_id` on the server (`fullDocumentBeforeChange:
 *   'required'`, so a missing pre-image fails the stream, which the journal records as a gap, rather
 *   than hiding the delete), and the pre-image is removed before the event leaves the server.
 * - `fields`: shared collections without pre-images: only events whose post-image (or document key,
 *   when the shard key holds `tenant_id`) names the tenant. A delete there carries only `_id`, which
 *   the server cannot attribute to a tenant, so deletes are not requested at all (`deletesTracked`
 *   is false) rather than every tenant's deletes being read.
 */
export type CaptureIsolation = 'database' | 'pre-images' | 'fields';

/** A cluster time `seconds` before now, by this process's clock (a capture's start when it has no token). */
export function clusterTimeBefore(seconds: number, now = Date.now()): BSON.Timestamp {
  return new BSON.Timestamp({ t: Math.max(1, Math.floor(now / 1000) - seconds), i: 0 });
}

/** Compares two cluster times. */
export function compareClusterTimes(a: BSON.Timestamp, b: BSON.Timestamp): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1;
  return a.i === b.i ? 0 : a.i < b.i ? -1 : 1;
}

/**
 * Follows one tenant's changes with a change stream per collection.
 *
 * Change streams are the one read that does not go through the command pipeline: the pipeline's
 * commands return whole results, and its scoper refuses `$changeStream` in tenant scope (a `$match`
 * after it could not hide what the stream reports). This module therefore opens them on the driver
 * (`@caas-db/core/unsafe`), with its own tenant filter first in every stream ({@link capturePipeline}),
 * run on the server: no event of another tenant reaches this process, let alone a backup or a
 * journal. Inserts, replacements and updates are matched on `fullDocument.tenant_id`; deletes, which
 * carry only `_id`, on the pre-image's `tenant_id` where the collections keep pre-images, and not at
 * all in shared collections without them (see {@link CaptureIsolation}).
 */
export class TenantChangeCapture {
  readonly #options: ChangeCaptureOptions;
  readonly #streams = new Map<string, ChangeStream>();
  readonly #tokens: Record<string, Document | null> = {};

  constructor(options: ChangeCaptureOptions) {
    this.#options = options;
  }

  /** Opens every stream from `position` (resume tokens where known, else the cluster time). */
  async open(position: CapturePosition): Promise<void> {
    const { client, tenant, database, collections } = this.#options;
    const db = unsafeDatabase(client, database);
    const pipeline = capturePipeline(tenant, this.isolation);
    for (const collection of collections) {
      const token = position.tokens[collection] ?? null;
      this.#tokens[collection] = token;
      const options: ChangeStreamOptions = {
        fullDocument: this.#options.fullDocument ?? 'updateLookup',
        ...(this.isolation === 'pre-images' && { fullDocumentBeforeChange: 'required' as const }),
        maxAwaitTimeMS: this.#options.maxAwaitTimeMS ?? 100,
        batchSize: 1000,
        ...(token ? { startAfter: token } : position.startAt ? { startAtOperationTime: position.startAt } : {}),
      };
      this.#streams.set(collection, db.collection(collection).watch(pipeline, options));
    }
  }

  /** How this capture tells its tenant's events apart. */
  get isolation(): CaptureIsolation {
    return this.#options.isolation ?? 'fields';
  }

  /** Whether this capture sees the tenant's deletes (not under `fields` isolation). */
  get deletesTracked(): boolean {
    return this.isolation !== 'fields';
  }

  /** The latest resume token of each collection (null while none was seen). */
  get tokens(): Record<string, Document | null> {
    return { ...this.#tokens };
  }

  /**
   * Reads every event available now, collection by collection, until each stream has none left;
   * `onChange` gets them in each collection's order; `stopWhen` ends the reading early (checked
   * after each event). Returns how many were read.
   * @throws the driver's error when a stream cannot resume (history lost): the caller records a gap.
   */
  async drain(onChange: (change: CapturedChange) => Promise<void> | void, stopWhen?: () => boolean): Promise<number> {
    // Streams are read side by side (each waits up to maxAwaitTimeMS when idle); within a
    // collection, events keep their order, which is the order replay needs.
    const counts = await Promise.all(
      [...this.#streams].map(async ([collection, stream]) => {
        let read = 0;
        for (;;) {
          const event = (await stream.tryNext()) as Document | null;
          if (stream.resumeToken) this.#tokens[collection] = stream.resumeToken as Document;
          if (event === null) return read;
          read += 1;
          await onChange(toChange(collection, event));
          // Under sustained writes a stream never runs dry: let the caller seal what it has.
          if (stopWhen?.()) return read;
        }
      }),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** Closes every stream. */
  async close(): Promise<void> {
    for (const stream of this.#streams.values()) await stream.close().catch(() => undefined);
    this.#streams.clear();
  }
}

const COLLECTION_EVENTS = ['drop', 'rename', 'dropDatabase', 'invalidate'];

/**
 * The stages every stream of a capture starts with: the tenant filter, run on the server, so no
 * event of another tenant reaches this process (see {@link CaptureIsolation}).
 */
export function capturePipeline(tenant: string, isolation: CaptureIsolation): Document[] {
  const collectionEvents = { operationType: { $in: COLLECTION_EVENTS } };
  if (isolation === 'database')
    // Every document here is the tenant's: all events, including updates a server reports without
    // naming their document (kept as gaps).
    return [{ $match: { operationType: { $in: ['insert', 'replace', 'update', 'delete', ...COLLECTION_EVENTS] } } }];
  const named = [
    { 'fullDocument.tenant_id': tenant },
    // A shard key holding tenant_id puts it in every event's document key.
    { 'documentKey.tenant_id': tenant },
    collectionEvents,
  ];
  if (isolation === 'fields') return [{ $match: { $or: named } }];
  return [{ $match: { $or: [...named, { 'fullDocumentBeforeChange.tenant_id': tenant }] } }, { $unset: 'fullDocumentBeforeChange' }];
}

function toChange(collection: string, event: Document): CapturedChange {
  const ct = event.clusterTime instanceof BSON.Timestamp ? event.clusterTime : new BSON.Timestamp({ t: 0, i: 0 });
  const base = { c: collection, ct, ...(event.wallTime instanceof Date && { wt: event.wallTime }) };
  const id = event.documentKey?._id;
  switch (event.operationType) {
    case 'insert':
    case 'replace':
      return { ...base, op: event.operationType, id: event.fullDocument?._id ?? id, d: event.fullDocument };
    case 'update':
      if (id === undefined) return { ...base, op: 'gap', reason: 'the server reported an update without naming its document' };
      // The document was deleted before the lookup: its delete event follows.
      if (!event.fullDocument || event.fullDocument._id === undefined) return { ...base, op: 'update', id };
      return { ...base, op: 'update', id, d: event.fullDocument };
    case 'delete':
      return { ...base, op: 'delete', id };
    default:
      return { ...base, op: 'gap', reason: `${String(event.operationType)} event` };
  }
}
