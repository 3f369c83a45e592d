import { createHash } from 'node:crypto';
import { ArchiveNotFoundError, type ArchiveReader, type ArchiveTarget, canonicalLine, contentHasher } from '@caas-db/archive';
import { type DataLayer, type Document, ValidationError } from '@caas-db/core';
import { type BackupMetadata, CHANGES_STREAM } from './backup.js';
import type { CapturedChange } from './change-capture.js';
import { type RestoreMismatch, RestoreVerificationError } from './errors.js';
import { createIdRemap, type IdMode, KEEP_IDS } from './id-remap.js';
import { schemaProblems, tenantModelOf } from './model.js';
import { ChangeReplayer, type FinalStates, idKey, trackFinalState } from './replay.js';
import { rewriteTenant } from './rewrite.js';
import { type Selection, selectionKey } from './selection.js';
import { tenantCollection } from './tenant-collection.js';

/** How a restore treats documents the tenant already has. */
export type RestoreMode = 'replace' | 'merge';

/** Options of {@link restoreTenantBackup}. */
export interface RestoreRunOptions {
  data: DataLayer;
  reader: ArchiveReader;
  /** Where checkpoints are kept (a restore resumes from its checkpoint). */
  checkpoints: ArchiveTarget | undefined;
  tenant: string;
  mode: RestoreMode;
  selection: Selection | undefined;
  rewrite: ((document: Document, collection: string) => Document) | undefined;
  collections: readonly string[] | undefined;
  /** `remap`: the copy gets ids of its own (another tenant id in the same collections). @default 'keep' */
  ids?: IdMode | undefined;
  verify: boolean;
  /** Check the whole archive before the first write, so a damaged backup changes nothing. */
  preflight: boolean;
  /** Documents per read of verification's scan (the service's `pageSize`). @default 1000 */
  pageSize?: number | undefined;
  onProgress?: ((progress: { collection: string; documents: number }) => void) | undefined;
}

/** What a restore did. */
export interface RestoreResult {
  backup: string;
  sourceTenant: string;
  tenant: string;
  mode: RestoreMode;
  selection: string;
  /** Documents inserted per collection (documents already there are skipped). */
  inserted: Record<string, number>;
  /** Documents removed first (replace mode) per collection. */
  removed: Record<string, number>;
  /** Changes of the backup's catch-up applied. */
  changesApplied: number;
  /** True when this run continued an interrupted one from its checkpoint. */
  resumed: boolean;
  /** Whether the documents kept their ids or got the target tenant's (`remap`). */
  ids: IdMode;
  verification: RestoreVerification | undefined;
  durationMS: number;
}

/** What verification after a restore checked. */
export interface RestoreVerification {
  /** Per collection: documents expected and found, and the content hash of what was found (in archive order). */
  collections: Record<string, { expected: number; found: number; contentSha256: string; matchesManifest: boolean }>;
  schemaChecked: number;
  conversationsChecked: number;
  /**
   * Denormalized fields that were already inconsistent in the backup (the restored documents equal
   * the backup's): restored faithfully, reported here, repaired by `messages.verifyLastMessage`.
   */
  inheritedDrift: string[];
}

interface Checkpoint {
  archive: string;
  tenant: string;
  mode: RestoreMode;
  selection: string;
  /** Absent in checkpoints written before ids could be remapped: `keep`. */
  ids?: IdMode;
  cleared: string[];
  next: Record<string, number>;
  complete: string[];
  inserted: Record<string, number>;
  removed: Record<string, number>;
  changesApplied: boolean;
}

/** The backup metadata of an archive, or a typed error when it is not a tenant backup. */
export function backupMetadataOf(reader: ArchiveReader): BackupMetadata {
  const metadata = reader.manifest.metadata as unknown as BackupMetadata;
  if (metadata?.kind !== 'caas-db-tenant-backup')
    throw new ValidationError('backup', [
      { path: 'name', message: `${reader.manifest.name} is not a tenant backup`, code: 'invalid_value' },
    ]);
  return metadata;
}

function checkpointKeyOf(tenant: string, archiveId: string): string {
  return `checkpoints/restore/${tenant}/${archiveId}.json`;
}

async function loadCheckpoint(target: ArchiveTarget | undefined, key: string): Promise<Checkpoint | undefined> {
  if (!target) return undefined;
  try {
    return JSON.parse(Buffer.from(await target.get(key)).toString('utf8')) as Checkpoint;
  } catch (error) {
    if (error instanceof ArchiveNotFoundError) return undefined;
    throw error;
  }
}

/**
 * Restores a tenant backup. Per collection, in replace mode the tenant's documents (or those the
 * selection names) are removed first; then each chunk's documents (rewritten to the target tenant,
 * filtered by the selection) are inserted verbatim where their `_id` is missing; then the changes
 * the backup caught up on are replayed. A checkpoint after every chunk lets a rerun continue where
 * an interrupted run stopped; every step is idempotent, so a rerun without the checkpoint ends the same.
 */
export async function restoreTenantBackup(options: RestoreRunOptions): Promise<RestoreResult> {
  const started = performance.now();
  const { data, reader, tenant, mode } = options;
  const metadata = backupMetadataOf(reader);
  const source = metadata.tenant;
  const ids = options.ids ?? 'keep';
  if (ids === 'remap' && tenant === source)
    throw new ValidationError('restore options', [
      {
        path: 'ids',
        message: `remap gives a copy under another tenant id its own ids; ${tenant} is the backup's tenant`,
        code: 'invalid_value',
      },
    ]);
  const remap = ids === 'remap' ? createIdRemap(source, tenant) : KEEP_IDS;
  // A selection names the backup's ids: with remapped ids it selects their images.
  const selection = ids === 'remap' ? options.selection?.remapped((id) => remap.map(id)) : options.selection;
  const transform = (document: Document, collection: string) => {
    const moved = remap.document(rewriteTenant(document, source, tenant), collection);
    return options.rewrite ? options.rewrite(moved, collection) : moved;
  };
  const mapId = ids === 'remap' ? (id: unknown) => remap.map(id) : undefined;
  const collections = options.collections ?? metadata.collections;
  const unknown = collections.filter((collection) => !metadata.collections.includes(collection));
  if (unknown.length > 0)
    throw new ValidationError('restore collections', [
      { path: 'collections', message: `not in the backup: ${unknown.join(', ')}`, code: 'invalid_value' },
    ]);
  const key = checkpointKeyOf(tenant, reader.manifest.id);
  const fresh: Checkpoint = {
    archive: reader.manifest.id,
    tenant,
    mode,
    selection: selectionKey(selection),
    ids,
    cleared: [],
    next: {},
    complete: [],
    inserted: {},
    removed: {},
    changesApplied: false,
  };
  const loaded = await loadCheckpoint(options.checkpoints, key);
  const resumed = loaded !== undefined && loaded.mode === mode && loaded.selection === fresh.selection && (loaded.ids ?? 'keep') === ids;
  const state = resumed ? loaded : fresh;
  const save = async () => options.checkpoints?.put(key, Buffer.from(JSON.stringify(state)));
  // Every chunk is authenticated as it is read anyway; checking them all first means a damaged
  // backup fails before the tenant is touched (replace mode removes documents before inserting).
  if (options.preflight) await reader.verify();

  for (const collection of collections) {
    if (state.complete.includes(collection)) continue;
    const target = tenantCollection(data, collection, tenant);
    if (mode === 'replace' && !state.cleared.includes(collection)) {
      state.removed[collection] = await target.deleteVerbatim(selection ? selection.filter(collection) : {});
      state.cleared.push(collection);
      await save();
    }
    let restored = state.inserted[collection] ?? 0;
    // After the clear of replace mode, only the chunk an interrupted run was writing can hold
    // documents already: look them up there; merge mode looks them up in every chunk.
    let mayExist = mode === 'merge' || (state.next[collection] ?? 0) > 0;
    for await (const chunk of reader.chunks(collection, { fromSeq: state.next[collection] ?? 0 })) {
      const documents = chunk.documents
        .map((document) => transform(document, collection))
        .filter((document) => !selection || selection.matches(collection, document));
      const existing = new Set<string>();
      if (mayExist)
        for (let index = 0; index < documents.length; index += 1000)
          for (const id of await target.existingIds(documents.slice(index, index + 1000).map((document) => document._id)))
            existing.add(idKey(id));
      mayExist = mode === 'merge';
      restored += await target.insertVerbatim(documents.filter((document) => !existing.has(idKey(document._id))));
      state.inserted[collection] = restored;
      state.next[collection] = chunk.entry.seq + 1;
      await save();
      options.onProgress?.({ collection, documents: restored });
    }
    state.complete.push(collection);
    await save();
  }

  let changesApplied = 0;
  if (!state.changesApplied) {
    const replayer = new ChangeReplayer({ data, tenant, transform, selection, collections: new Set(collections), mapId });
    for await (const change of reader.documents(CHANGES_STREAM)) await replayer.apply(change as unknown as CapturedChange);
    await replayer.flush();
    changesApplied = replayer.applied;
    state.changesApplied = true;
    await save();
  }

  const verification = options.verify
    ? await verifyRestore({ data, reader, tenant, mode, selection, transform, mapId, collections, pageSize: options.pageSize })
    : undefined;
  await options.checkpoints?.delete(key);
  return {
    backup: reader.manifest.name,
    sourceTenant: source,
    tenant,
    mode,
    selection: selectionKey(selection),
    inserted: state.inserted,
    removed: state.removed,
    changesApplied,
    resumed,
    ids,
    verification,
    durationMS: performance.now() - started,
  };
}

/** Options of {@link verifyRestore}. */
export interface VerifyRestoreOptions {
  data: DataLayer;
  reader: ArchiveReader;
  tenant: string;
  mode: RestoreMode;
  selection: Selection | undefined;
  transform: (document: Document, collection: string) => Document;
  /** The target id of a recorded change's `_id` (remapped ids). */
  mapId?: ((id: unknown) => unknown) | undefined;
  collections: readonly string[];
  /** Documents per read of the whole-tenant scan. @default 1000 */
  pageSize?: number | undefined;
}

/**
 * Checks a restored tenant against its backup: every document the backup holds (after its
 * catch-up changes, the tenant rewrite and the selection) is in the database, equal field by field
 * with exact types (merge mode: present, since existing documents were kept); in replace mode the
 * tenant has no other documents there; each collection's content hash in archive order matches the
 * manifest when nothing was rewritten; every document passes its model's schema; and every restored
 * conversation's `last_message` names its newest live message (read-only; drift the backup itself
 * held is reported in `inheritedDrift`, not thrown).
 * @throws {RestoreVerificationError} listing what differs.
 */
export async function verifyRestore(options: VerifyRestoreOptions): Promise<RestoreVerification> {
  const { data, reader, tenant, mode, selection, transform, collections } = options;
  const model = tenantModelOf(data);
  const finalStates: FinalStates = new Map();
  // The catch-up's final states (memory: one entry per document changed during the backup).
  const interpretation = { transform, selection, collections: new Set(collections), mapId: options.mapId };
  for await (const change of reader.documents(CHANGES_STREAM))
    trackFinalState(change as unknown as CapturedChange, interpretation, finalStates);
  const mismatches: RestoreMismatch[] = [];
  const result: RestoreVerification = { collections: {}, schemaChecked: 0, conversationsChecked: 0, inheritedDrift: [] };
  const conversations: Array<{ id: unknown; lastMessage: unknown }> = [];
  // Replace mode over whole collections reads back every message of the tenant: the newest live
  // message per conversation is known from that read, without a query per conversation.
  const wholeTenant = mode === 'replace' && !selection;
  const newestLive: NewestLive = new Map();
  let contentCompared = mode === 'replace';
  const note = (mismatch: RestoreMismatch) => {
    if (mismatches.length < 100) mismatches.push(mismatch);
  };
  for (const collection of collections) {
    const target = tenantCollection(data, collection, tenant);
    const definition = model.get(collection);
    const states = finalStates.get(collection) ?? new Map<string, Document | null>();
    if (wholeTenant) {
      // Fast path: one keyset scan of the tenant's collection (as a backup reads it) against the
      // backup, compared as a multiset of documents (count and the sum of their SHA-256); only a
      // collection that differs is compared document by document below, to name the differences.
      const fast = await scanAndCompare(reader, target, collection, transform, states, definition, options.pageSize ?? 1000);
      if (fast.equal) {
        for (const actual of fast.sample) {
          if (collection === 'conversations') conversations.push({ id: actual._id, lastMessage: actual.last_message?.message_id ?? null });
        }
        for (const [key, newest] of fast.newestLive) newestLive.set(key, newest);
        for (const problem of fast.problems) note({ collection, kind: 'schema', detail: problem });
        result.schemaChecked += definition ? fast.count : 0;
        const manifestHash = reader.manifest.streams[collection]?.contentSha256;
        result.collections[collection] = {
          expected: fast.count,
          found: fast.count,
          contentSha256: fast.contentSha256,
          matchesManifest: fast.contentSha256 === manifestHash,
        };
        continue;
      }
    }
    const hasher = contentHasher();
    let expected = 0;
    let found = 0;
    const compare = async (all: Document[]) => {
      for (let index = 0; index < all.length; index += 1000) await compareBatch(all.slice(index, index + 1000));
    };
    const compareBatch = async (documents: Document[]) => {
      if (documents.length === 0) return;
      const stored = await target.findExact({ _id: { $in: documents.map((document) => document._id) } });
      const byId = new Map(stored.map((document) => [idKey(document._id), document]));
      for (const document of documents) {
        expected += 1;
        const actual = byId.get(idKey(document._id));
        if (!actual) {
          note({ collection, kind: 'content', detail: `document ${idKey(document._id)} is missing` });
          continue;
        }
        found += 1;
        hasher.update(actual);
        if (mode === 'replace' && canonicalLine(actual) !== canonicalLine(document))
          note({ collection, kind: 'content', detail: `document ${idKey(document._id)} differs from the backup` });
        if (definition) {
          result.schemaChecked += 1;
          for (const problem of schemaProblems(definition, actual))
            note({ collection, kind: 'schema', detail: `document ${idKey(document._id)}: ${problem}` });
        }
        if (collection === 'conversations') conversations.push({ id: actual._id, lastMessage: actual.last_message?.message_id ?? null });
        if (wholeTenant && collection === 'messages' && actual.deleted_at == null && actual.created_at instanceof Date) {
          const key = idKey(actual.conversation_id);
          const at = actual.created_at.getTime();
          const current = newestLive.get(key);
          if (!current || at > current.at || (at === current.at && idKey(actual._id) > idKey(current.id)))
            newestLive.set(key, { at, id: actual._id });
        }
      }
    };
    for await (const { documents, created } of documentsAsOfBackup(reader, collection, transform, states)) {
      await compare(created || !selection ? documents : documents.filter((document) => selection.matches(collection, document)));
    }
    if (mode === 'replace') {
      const count = await target.countAll(selection ? selection.filter(collection) : {});
      if (count !== expected) note({ collection, kind: 'count', detail: `${count} documents, the backup has ${expected}` });
    }
    const contentSha256 = hasher.digest();
    const manifestHash = reader.manifest.streams[collection]?.contentSha256;
    result.collections[collection] = { expected, found, contentSha256, matchesManifest: contentSha256 === manifestHash };
  }
  if (collections.includes('messages') && collections.includes('conversations')) {
    // Read-only (messages.verifyLastMessage would repair): last_message names the newest live message.
    const messages = tenantCollection(data, 'messages', tenant);
    contentCompared &&= !mismatches.some((mismatch) => mismatch.kind === 'content' || mismatch.kind === 'count');
    for (const conversation of conversations) {
      const newestId = wholeTenant
        ? (newestLive.get(idKey(conversation.id))?.id ?? null)
        : ((await messages.newestLiveMessage(conversation.id))?._id ?? null);
      result.conversationsChecked += 1;
      if (idKey(newestId) === idKey(conversation.lastMessage)) continue;
      const detail = `last_message of ${idKey(conversation.id)} names ${idKey(conversation.lastMessage)}, the newest live message is ${idKey(newestId)}`;
      // Restored documents equal to the backup's: the drift was in the backup (repair it with messages.verifyLastMessage).
      if (contentCompared) result.inheritedDrift.push(detail);
      else note({ collection: 'conversations', kind: 'invariant', detail });
    }
  }
  if (mismatches.length > 0) throw new RestoreVerificationError(mismatches);
  return result;
}

/** The newest live message per conversation (by `created_at`, then `_id`), as `last_message` must name it. */
type NewestLive = Map<string, { at: number; id: unknown }>;

function trackNewestLive(newestLive: NewestLive, message: Document): void {
  if (message.deleted_at != null || !(message.created_at instanceof Date)) return;
  const key = idKey(message.conversation_id);
  const at = message.created_at.getTime();
  const current = newestLive.get(key);
  if (!current || at > current.at || (at === current.at && idKey(message._id) > idKey(current.id)))
    newestLive.set(key, { at, id: message._id });
}

/**
 * A backup's documents of `collection` as of its consistency point, a batch at a time: each archived
 * document transformed, then replaced by its catch-up state (dropped when the catch-up deleted it);
 * last, in batches of 500 marked `created`, the documents the catch-up created.
 */
async function* documentsAsOfBackup(
  reader: ArchiveReader,
  collection: string,
  transform: (document: Document, collection: string) => Document,
  states: Map<string, Document | null>,
): AsyncGenerator<{ documents: Document[]; created: boolean }> {
  const seen = new Set<string>();
  for await (const chunk of reader.chunks(collection)) {
    const documents: Document[] = [];
    for (const archived of chunk.documents) {
      let document: Document | null = transform(archived, collection);
      const key = idKey(document._id);
      if (states.has(key)) {
        document = states.get(key) ?? null;
        seen.add(key);
      }
      if (document) documents.push(document);
    }
    yield { documents, created: false };
  }
  const created = [...states].filter(([key, document]) => !seen.has(key) && document !== null).map(([, document]) => document as Document);
  for (let index = 0; index < created.length; index += 500) yield { documents: created.slice(index, index + 500), created: true };
}

const MOD = 1n << 256n;

function documentDigest(document: Document): bigint {
  return BigInt(`0x${createHash('sha256').update(canonicalLine(document)).digest('hex')}`);
}

/**
 * Scans the tenant's collection in `_id` order (pages of `pageSize`) and the backup's stream (after its
 * catch-up states and the transform), comparing them as multisets: equal counts and equal sums of
 * per-document SHA-256. Keeps what verification needs from the scan (conversations, the newest live
 * messages, schema problems, the content hash in `_id` order, which is the backup's order).
 */
async function scanAndCompare(
  reader: ArchiveReader,
  target: ReturnType<typeof tenantCollection>,
  collection: string,
  transform: (document: Document, collection: string) => Document,
  states: Map<string, Document | null>,
  definition: Parameters<typeof schemaProblems>[0] | undefined,
  pageSize: number,
) {
  let expectedSum = 0n;
  let expectedCount = 0;
  for await (const { documents } of documentsAsOfBackup(reader, collection, transform, states)) {
    for (const document of documents) {
      expectedSum = (expectedSum + documentDigest(document)) % MOD;
      expectedCount += 1;
    }
  }
  let actualSum = 0n;
  let count = 0;
  const hasher = contentHasher();
  const sample: Document[] = [];
  const newestLive: NewestLive = new Map();
  const problems: string[] = [];
  let after: unknown;
  for (;;) {
    const page = await target.scanPage(after, pageSize);
    for (const document of page) {
      actualSum = (actualSum + documentDigest(document)) % MOD;
      count += 1;
      hasher.update(document);
      if (collection === 'conversations') sample.push(document);
      if (collection === 'messages') trackNewestLive(newestLive, document);
      if (definition && problems.length < 100)
        for (const problem of schemaProblems(definition, document)) problems.push(`document ${idKey(document._id)}: ${problem}`);
    }
    if (page.length < pageSize) break;
    after = page[page.length - 1]?._id;
  }
  return {
    equal: count === expectedCount && actualSum === expectedSum,
    count,
    contentSha256: hasher.digest(),
    sample,
    newestLive,
    problems,
  };
}
