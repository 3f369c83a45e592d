import { type ArchiveTarget, createArchiveWriter, type KeyProvider, listArchives } from '@caas-db/archive';
import { BSON, type DataLayer, type Document, type Listener, TypedEmitter } from '@caas-db/core';
import { CAPTURE_OVERLAP_SECONDS } from './backup.js';
import { type CapturedChange, clusterTimeBefore, compareClusterTimes, TenantChangeCapture } from './change-capture.js';
import { PreImagesRequiredError } from './errors.js';
import { captureIsolationOf } from './isolation.js';

/** The archive stream of a journal segment. */
export const JOURNAL_STREAM = 'events';

/** What `metadata` of a journal segment holds. */
export interface JournalSegmentMetadata {
  kind: 'caas-db-tenant-journal';
  tenant: string;
  seq: number;
  collections: string[];
  /**
   * Where this segment's chain of segments began: the cluster time its capture started at. A new
   * chain starts when a journal starts without a previous segment, or after a gap.
   */
  chainStart: string;
  /** Resume tokens after this segment's last event: the next segment starts here (persisted state). */
  tokens: Record<string, unknown>;
  events: number;
  /** Cluster times of the first and last event (`t.i`), when there are events. */
  first: string | null;
  last: string | null;
  /** Wall time (journal process) when the streams were last read to their end before sealing. */
  caughtUpAt: string;
  sealedAt: string;
  /** Present on a segment that records a gap: the journal lost history here and began a new chain. */
  gap?: { reason: string; at: string };
}

/** Events of a {@link TenantJournal}. */
export interface JournalEvents {
  /** A segment was sealed and stored. */
  segment: { name: string; events: number; lagMS: number };
  /** The journal lost history (its resume point is gone): a new full backup is needed. */
  gap: { reason: string };
  /** Reading or storing failed; the journal retries from its last sealed segment. */
  error: { error: unknown };
}

/** Options of {@link TenantJournal}. */
export interface JournalOptions {
  data: DataLayer;
  target: ArchiveTarget;
  keyProvider: KeyProvider;
  tenant: string;
  collections: readonly string[];
  database?: string | undefined;
  /** Key prefix of the journal's segments. @default 'journals' */
  prefix?: string | undefined;
  /** Seal a segment at this many events. @default 10000 */
  segmentEvents?: number | undefined;
  /** Seal a non-empty segment at least this often: the journal's recovery point objective. @default 1000 */
  flushIntervalMS?: number | undefined;
  fullDocument?: 'updateLookup' | 'whenAvailable' | undefined;
}

/** Formats a cluster time as `t.i`. */
export function formatClusterTime(time: BSON.Timestamp): string {
  return `${time.t}.${time.i}`;
}

/** Parses `t.i`. */
export function parseClusterTime(text: string): BSON.Timestamp {
  const [t, i] = text.split('.').map(Number);
  return new BSON.Timestamp({ t: t ?? 0, i: i ?? 0 });
}

/** The object-key prefix of a tenant's journal. */
export function journalPrefix(prefix: string, tenant: string): string {
  return `${prefix}/${tenant}/`;
}

/**
 * A tenant's continuous backup: its change streams read into sealed, encrypted journal segments
 * (archives of the same format as backups). The resume tokens after each segment are stored in
 * that segment's manifest, so a restarted journal continues exactly where the last sealed segment
 * ended (events read but not sealed are read again). When the server no longer has the history a
 * token points at, the journal records a gap segment and starts a new chain: point-in-time
 * recovery across a gap fails with `JournalGapError`.
 */
export class TenantJournal {
  readonly #options: JournalOptions & { prefix: string; segmentEvents: number; flushIntervalMS: number };
  readonly #events = new TypedEmitter<JournalEvents>();
  #capture: TenantChangeCapture | undefined;
  #pending: CapturedChange[] = [];
  #seq = 0;
  #chainStart = '';
  #lastSealed = 0;
  #caughtUpAt = new Date(0);
  #running: Promise<void> | undefined;
  #stopping = false;
  #lastEvent: BSON.Timestamp | undefined;
  #lastEventSeenAt = 0;
  #received = 0;
  /** `caughtUpAt` of the last sealed segment (ms). */
  #caughtUpSealed = 0;

  constructor(options: JournalOptions) {
    this.#options = {
      ...options,
      prefix: options.prefix ?? 'journals',
      segmentEvents: options.segmentEvents ?? 10_000,
      flushIntervalMS: options.flushIntervalMS ?? 1000,
    };
  }

  /** Subscribes to a journal event. */
  on<Name extends keyof JournalEvents>(event: Name, listener: Listener<JournalEvents[Name]>): () => void {
    return this.#events.on(event, listener);
  }

  /** The greatest cluster time of the events read, sealed or not. */
  get lastEventTime(): BSON.Timestamp | undefined {
    return this.#lastEvent;
  }

  /** Events read since this journal object started (sealed or not). */
  get received(): number {
    return this.#received;
  }

  /** Events read and not yet sealed. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Sealed segments so far (the next segment's number). */
  get segments(): number {
    return this.#seq;
  }

  /**
   * Opens the streams where the last sealed segment ended (or, for a new journal, a moment before
   * now) and keeps reading in the background until {@link stop}.
   */
  async start(): Promise<void> {
    if (this.#running) return;
    await this.#open();
    this.#stopping = false;
    this.#running = this.#loop();
  }

  /** Reads what is available now and seals it (for tests and for a final flush). */
  async catchUp(): Promise<number> {
    if (!this.#capture) await this.#open();
    const read = await this.#drain();
    this.#caughtUpAt = new Date();
    await this.seal();
    return read;
  }

  /** Stops reading, seals what was read and closes the streams. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
    this.#running = undefined;
    if (this.#capture) {
      await this.#drain().catch(() => 0);
      this.#caughtUpAt = new Date();
      await this.seal(undefined, this.#caughtUpSealed < this.#lastEventSeenAt);
      await this.#capture.close();
      this.#capture = undefined;
    }
  }

  /**
   * Seals the events read so far into a segment (nothing when there are none, unless `force`: an
   * empty segment then records how far the journal has caught up).
   */
  async seal(gap?: { reason: string }, force = false): Promise<string | undefined> {
    if (this.#pending.length === 0 && !gap && !force) return undefined;
    const events = this.#pending;
    this.#pending = [];
    const { tenant, prefix } = this.#options;
    const name = `${journalPrefix(prefix, tenant)}${String(this.#seq).padStart(10, '0')}`;
    const writer = await createArchiveWriter({
      target: this.#options.target,
      keyProvider: this.#options.keyProvider,
      name,
      kind: 'journal',
      overwrite: true,
    });
    await writer.declareStream(JOURNAL_STREAM);
    for (const event of events) await writer.write(JOURNAL_STREAM, event as unknown as Document);
    const first = events[0]?.ct;
    const last = events[events.length - 1]?.ct;
    const metadata: JournalSegmentMetadata = {
      kind: 'caas-db-tenant-journal',
      tenant,
      seq: this.#seq,
      collections: [...this.#options.collections],
      chainStart: this.#chainStart,
      tokens: JSON.parse(JSON.stringify(this.#capture?.tokens ?? {})) as Record<string, unknown>,
      events: events.length,
      first: first ? formatClusterTime(first) : null,
      last: last ? formatClusterTime(last) : null,
      caughtUpAt: this.#caughtUpAt.toISOString(),
      sealedAt: new Date().toISOString(),
      ...(gap && { gap: { reason: gap.reason, at: new Date().toISOString() } }),
    };
    await writer.finish(metadata as unknown as Record<string, unknown>);
    this.#seq += 1;
    this.#lastSealed = Date.now();
    this.#caughtUpSealed = this.#caughtUpAt.getTime();
    this.#events.emit('segment', { name, events: events.length, lagMS: this.#lastEventSeenAt ? Date.now() - this.#lastEventSeenAt : 0 });
    return name;
  }

  async #open(): Promise<void> {
    const { target, tenant, prefix, collections } = this.#options;
    // A journal that missed deletes would bring deleted documents back on point-in-time recovery,
    // and in shared collections only pre-images attribute a delete to its tenant.
    const { isolation, withoutPreImages, watchable } = await captureIsolationOf(this.#options.data, collections, this.#options.database);
    if (isolation === 'fields') throw new PreImagesRequiredError(tenant, withoutPreImages);
    const segments = await listArchives(target, journalPrefix(prefix, tenant));
    const last = segments
      .map((listing) => listing.metadata as unknown as JournalSegmentMetadata)
      .filter((metadata) => metadata.kind === 'caas-db-tenant-journal')
      .sort((a, b) => a.seq - b.seq)
      .at(-1);
    const startAt = clusterTimeBefore(CAPTURE_OVERLAP_SECONDS);
    this.#seq = last ? last.seq + 1 : 0;
    this.#chainStart = last && !last.gap ? last.chainStart : formatClusterTime(startAt);
    const tokens = last && !last.gap ? (last.tokens as Record<string, Document | null>) : {};
    // Collections without a token yet: from the chain's start (replaying earlier events is harmless).
    const position = { tokens, startAt: last && !last.gap ? parseClusterTime(last.chainStart) : startAt };
    this.#capture = new TenantChangeCapture({
      client: this.#options.data.client,
      tenant,
      ...(this.#options.database !== undefined && { database: this.#options.database }),
      collections: watchable,
      maxAwaitTimeMS: 50,
      isolation,
      ...(this.#options.fullDocument && { fullDocument: this.#options.fullDocument }),
    });
    await this.#capture.open(position);
    try {
      await this.#drain();
    } catch (error) {
      // The stored tokens point at history the server no longer has.
      await this.#capture.close();
      const reason = `cannot resume from the last sealed segment: ${(error as Error).message}`;
      this.#chainStart = formatClusterTime(startAt);
      this.#pending = [];
      await this.seal({ reason });
      this.#events.emit('gap', { reason });
      this.#capture = new TenantChangeCapture({
        client: this.#options.data.client,
        tenant,
        ...(this.#options.database !== undefined && { database: this.#options.database }),
        collections: watchable,
        maxAwaitTimeMS: 50,
        isolation,
        ...(this.#options.fullDocument && { fullDocument: this.#options.fullDocument }),
      });
      await this.#capture.open({ tokens: {}, startAt });
    }
  }

  async #drain(stopWhen?: () => boolean): Promise<number> {
    if (!this.#capture) return 0;
    return this.#capture.drain((change) => {
      this.#pending.push(change);
      this.#received += 1;
      // Streams are read side by side: the newest event is the one with the greatest cluster time.
      if (!this.#lastEvent || compareClusterTimes(change.ct, this.#lastEvent) > 0) this.#lastEvent = change.ct;
      this.#lastEventSeenAt = Date.now();
    }, stopWhen);
  }

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      if (!this.#capture) {
        await new Promise((resolve) => setTimeout(resolve, this.#options.flushIntervalMS));
        await this.#open().catch((error: unknown) => this.#events.emit('error', { error }));
        continue;
      }
      try {
        const read = await this.#drain(
          () => this.#pending.length >= this.#options.segmentEvents || Date.now() - this.#lastSealed >= this.#options.flushIntervalMS,
        );
        if (read === 0) this.#caughtUpAt = new Date();
        const due = Date.now() - this.#lastSealed >= this.#options.flushIntervalMS;
        if (this.#pending.length >= this.#options.segmentEvents || (due && this.#pending.length > 0)) await this.seal();
        // Once after a burst, an empty segment records that the journal caught up past its events
        // (point-in-time recovery to a moment needs the journal to have read everything before it).
        else if (due && read === 0 && this.#caughtUpSealed < this.#lastEventSeenAt) await this.seal(undefined, true);
      } catch (error) {
        this.#events.emit('error', { error });
        // Start again from the last sealed segment: what was read and not sealed is read again.
        this.#pending = [];
        await this.#capture?.close();
        this.#capture = undefined;
      }
    }
  }
}
