import { BSON, type Document, type Filter, type FindOptions, type ObjectId } from 'mongodb';
import { z } from 'zod';
import type { ScopedCollection, UpdateCommandOptions } from '../collection/scoped-collection.js';
import { ValidationError } from '../errors.js';
import type { OperationDeclaration } from '../pipeline/operation.js';
import { objectIdSchema } from '../schema/primitives.js';
import { parseInput } from '../validation-issues.js';

/**
 * The upgrade functions of a model, keyed by the version each one upgrades **from**:
 * `upgrades[1]` turns a version-1 document into a version-2 one. Each receives a copy of the
 * stored document (possibly projected: tolerate missing fields) and returns the document at the
 * next version; `schema_version` is set by core.
 */
export type DocumentUpgrades = Readonly<Record<number, (document: Document) => Document>>;

/** What versioning needs of a model's definition. */
export interface VersionedModel {
  readonly collection: string;
  /** The version this code writes and understands. */
  readonly schemaVersion: number;
  readonly upgrades?: DocumentUpgrades;
  /** Write an upgraded document back when a read upgraded it. @default false */
  readonly writeBackUpgrades?: boolean;
}

// Core-private: the only holder that may write `schema_version` after insert (see model invariants).
const schemaUpgradeGrant = Symbol('caas-db schema upgrade');

/** Whether `grant` is the schema-upgrade grant (used by the invariants layer). */
export function isSchemaUpgradeGrant(grant: symbol | undefined): boolean {
  return grant === schemaUpgradeGrant;
}

/**
 * Brings `document` to `model.schemaVersion` by applying each upgrade in turn.
 * @returns the upgraded document, or `document` itself when it is current, newer (written by a
 * newer deploy: a reader never downgrades), or carries no `schema_version` (a projection).
 * @throws {ValidationError} when an upgrade for a version in between is missing.
 */
export function upgradeDocument(document: Document, model: VersionedModel): Document {
  const from = document.schema_version;
  if (typeof from !== 'number' || from >= model.schemaVersion) return document;
  let upgraded: Document = { ...document };
  for (let version = from; version < model.schemaVersion; version += 1) {
    const upgrade = model.upgrades?.[version];
    if (!upgrade) {
      throw new ValidationError(`${model.collection} document ${String(document._id)}`, [
        { path: 'schema_version', message: `no upgrade from version ${version} to ${version + 1}`, code: 'missing_upgrade' },
      ]);
    }
    upgraded = { ...upgrade(upgraded), schema_version: version + 1 };
  }
  return upgraded;
}

/**
 * The update that turns `stored` into `upgraded` in place, guarded by the version it was read at:
 * if another writer upgraded it first, the filter matches nothing and nothing is written twice.
 */
function writeBackOf(stored: Document, upgraded: Document): { filter: Document; update: Document } | undefined {
  const set: Document = {};
  const unset: Document = {};
  for (const [field, value] of Object.entries(upgraded)) {
    if (field === '_id') continue;
    if (!(field in stored) || !sameValue(stored[field], value)) set[field] = value;
  }
  for (const field of Object.keys(stored)) if (!(field in upgraded)) unset[field] = '';
  if (Object.keys(set).length === 0 && Object.keys(unset).length === 0) return undefined;
  return {
    filter: { _id: stored._id, schema_version: stored.schema_version },
    update: { ...(Object.keys(set).length > 0 && { $set: set }), ...(Object.keys(unset).length > 0 && { $unset: unset }) },
  };
}

function sameValue(left: unknown, right: unknown): boolean {
  if (left === right) return true;
  return BSON.EJSON.stringify({ v: left }, { relaxed: false }) === BSON.EJSON.stringify({ v: right }, { relaxed: false });
}

/** The collection under a versioned wrapper: migrations read stored documents as they are. */
const rawCollections = new WeakMap<ScopedCollection, ScopedCollection>();

const WRITE_BACK: OperationDeclaration = { name: 'upgrade (write back)', idempotent: true, grant: schemaUpgradeGrant };

async function writeBack(collection: ScopedCollection, pairs: Array<[Document, Document]>): Promise<number> {
  const operations = pairs.flatMap(([stored, upgraded]) => {
    const write = writeBackOf(stored, upgraded);
    return write ? [{ updateOne: write }] : [];
  });
  if (operations.length === 0) return 0;
  const result = await collection.bulkWrite(WRITE_BACK, operations, false);
  return result.modifiedCount;
}

/**
 * Inclusion projections get `schema_version`, so a projected read of an old document is upgraded
 * too; `keep` is what the caller asked for (the upgraded row is cut back to it).
 */
function withVersion(options: FindOptions): { options: FindOptions; keep: ReadonlySet<string> | undefined } {
  const projection = options.projection as Document | undefined;
  if (!projection) return { options, keep: undefined };
  const included = Object.entries(projection).filter(([field, on]) => field !== '_id' && (on === 1 || on === true));
  if (included.length === 0) return { options, keep: undefined };
  const keep = new Set(['_id', ...included.map(([field]) => field)]);
  return { options: { ...options, projection: { ...projection, schema_version: 1 } }, keep };
}

/**
 * The collection a repository of `model` reads through: `find` and `findOneAndUpdate` results
 * older than the model's version are upgraded on the way out (and written back when the model asks
 * for it). A model without upgrades gets `collection` itself; for one with upgrades, a current
 * document costs one integer comparison.
 */
export function versionedCollection(collection: ScopedCollection, model: VersionedModel): ScopedCollection {
  if (!model.upgrades || Object.keys(model.upgrades).length === 0) return collection;
  const current = model.schemaVersion;
  // ScopedCollection keeps its state in private fields: every other method runs on the original.
  const wrapper = Object.create(collection) as ScopedCollection;
  rawCollections.set(wrapper, collection);
  const upgradeRows = async (rows: Document[], keep: ReadonlySet<string> | undefined): Promise<Document[]> => {
    const pairs: Array<[Document, Document]> = [];
    for (let index = 0; index < rows.length; index += 1) {
      const row = rows[index] as Document;
      if (!(row.schema_version < current)) continue;
      const upgraded = upgradeDocument(row, model);
      pairs.push([row, upgraded]);
      rows[index] = upgraded;
    }
    if (pairs.length > 0 && model.writeBackUpgrades && !keep) {
      // Best effort: the read's result is right either way; a later read or migration writes it.
      await writeBack(collection, pairs).catch(() => 0);
    }
    if (keep) for (const row of rows) for (const field of Object.keys(row)) if (!keep.has(field)) delete row[field];
    return rows;
  };
  const prototype = Object.getPrototypeOf(collection) as object;
  for (const method of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, method);
    if (method === 'constructor' || method === 'find' || method === 'findOneAndUpdate') continue;
    if (!descriptor || typeof descriptor.value !== 'function') continue;
    Object.defineProperty(wrapper, method, { value: (descriptor.value as (...args: unknown[]) => unknown).bind(collection) });
  }
  for (const getter of ['tenant', 'name', 'tenantOwned'] as const) {
    Object.defineProperty(wrapper, getter, { get: () => collection[getter] });
  }
  Object.defineProperty(wrapper, 'find', {
    value: async (operation: OperationDeclaration, filter: Filter<Document>, options: FindOptions = {}) => {
      const versioned = withVersion(options);
      const rows = await collection.find(operation, filter, versioned.options);
      return upgradeRows(rows, versioned.keep);
    },
  });
  Object.defineProperty(wrapper, 'findOneAndUpdate', {
    value: async (
      operation: OperationDeclaration,
      filter: Filter<Document>,
      update: Document,
      options: UpdateCommandOptions & { returnDocument?: 'before' | 'after'; projection?: Document } = {},
    ) => {
      const row = await collection.findOneAndUpdate(operation, filter, update, options);
      if (!row || !(row.schema_version < current)) return row;
      const [upgraded] = await upgradeRows([row], withVersion({ ...(options.projection && { projection: options.projection }) }).keep);
      return upgraded ?? null;
    },
  });
  return wrapper;
}

const upgradeBatchOptionsSchema = z.strictObject({
  batchSize: z.number().int().min(1).max(10_000).optional(),
  after: objectIdSchema.nullable().optional(),
  dryRun: z.boolean().optional(),
});

/** Options of one batch of `upgradeStoredBatch`. */
export interface UpgradeBatchOptions {
  /** Documents scanned per batch. @default 1000 */
  batchSize?: number;
  /** Continue after this `_id` (the previous batch's `lastId`): the checkpoint of a resumable run. */
  after?: ObjectId | string | null;
  /** Count what would be upgraded, write nothing. @default false */
  dryRun?: boolean;
}

/** The outcome of one upgrade batch. */
export interface UpgradeBatch {
  /** Documents read in this batch (all versions). */
  scanned: number;
  /** Documents older than the model's version found in this batch. */
  outdated: number;
  /** Documents this batch wrote (0 on a dry run, or for ones a concurrent writer upgraded first). */
  upgraded: number;
  /** The checkpoint to pass as `after` next; null when the scan reached the end. */
  lastId: ObjectId | null;
}

/**
 * Upgrades one batch of stored documents (in `_id` order, soft-deleted ones included) to the
 * model's version and writes them back in one bulk write, for migrations. It reads an `_id` range
 * (served by the `_id` index), so a whole-collection upgrade is a loop of bounded batches with a
 * checkpoint between them, never one unbounded update.
 * @throws {ValidationError} for invalid options; nothing is read or written.
 */
export async function upgradeStoredBatch(
  collection: ScopedCollection,
  model: VersionedModel,
  options: UpgradeBatchOptions = {},
): Promise<UpgradeBatch> {
  const parsed = parseInput(upgradeBatchOptionsSchema, options, 'upgrade options');
  const raw = rawCollections.get(collection) ?? collection;
  const batchSize = parsed.batchSize ?? 1000;
  const filter: Document = parsed.after ? { _id: { $gt: parsed.after } } : {};
  const rows = await raw.find('upgrade (scan)', filter, { sort: { _id: 1 }, limit: batchSize });
  const pairs: Array<[Document, Document]> = [];
  for (const row of rows) if (row.schema_version < model.schemaVersion) pairs.push([row, upgradeDocument(row, model)]);
  const upgraded = parsed.dryRun || pairs.length === 0 ? 0 : await writeBack(raw, pairs);
  return {
    scanned: rows.length,
    outdated: pairs.length,
    upgraded,
    lastId: rows.length < batchSize ? null : ((rows.at(-1)?._id as ObjectId | undefined) ?? null),
  };
}
