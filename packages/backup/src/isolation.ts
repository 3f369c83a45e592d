import type { DataLayer, Document } from '@caas-db/core';
import type { CaptureIsolation } from './change-capture.js';

/** How a tenant's changes can be captured, and the shared collections that lack pre-images. */
export interface IsolationReport {
  isolation: CaptureIsolation;
  /** Collections without `changeStreamPreAndPostImages` (shared strategy only). */
  withoutPreImages: string[];
  /** The collections a change stream can follow. */
  watchable: string[];
  /**
   * Time-series collections (`metrics` where the server has them): MongoDB opens no change stream
   * on them, so backups do not catch up on them and journals do not follow them.
   */
  timeSeries: string[];
}

interface CollectionInfo {
  name: string;
  type?: string;
  options?: { changeStreamPreAndPostImages?: { enabled?: boolean } };
}

async function collectionInfos(data: DataLayer, database: string, collections: readonly string[]): Promise<CollectionInfo[]> {
  const result = await data.admin.runCommand(
    database,
    { listCollections: 1, filter: { name: { $in: [...collections] } } },
    { name: 'backup.listCollections', idempotent: true },
  );
  return ((result.cursor as { firstBatch?: Document[] } | undefined)?.firstBatch ?? []) as CollectionInfo[];
}

/**
 * How a capture of `collections` can tell its tenant's events apart: `database` when the streams
 * open on the tenant's own database (database-per-tenant: `database` given), else `pre-images` when
 * every collection of the shared database keeps change-stream pre-images, else `fields`.
 * Time-series collections are left out (no change streams there).
 */
export async function captureIsolationOf(
  data: DataLayer,
  collections: readonly string[],
  database: string | undefined,
): Promise<IsolationReport> {
  const infos = await collectionInfos(data, database ?? data.client.databaseName, collections);
  const timeSeries = infos.filter((info) => info.type === 'timeseries').map((info) => info.name);
  const watchable = collections.filter((collection) => !timeSeries.includes(collection));
  if (database !== undefined) return { isolation: 'database', withoutPreImages: [], watchable, timeSeries };
  const enabled = new Set(infos.filter((info) => info.options?.changeStreamPreAndPostImages?.enabled === true).map((info) => info.name));
  const withoutPreImages = watchable.filter((collection) => !enabled.has(collection));
  return { isolation: withoutPreImages.length === 0 ? 'pre-images' : 'fields', withoutPreImages, watchable, timeSeries };
}

/**
 * Turns on change-stream pre-images for `collections` of the shared database (creating those that
 * do not exist yet), so journals can attribute deletes to their tenant. Admin commands through the
 * pipeline (`collMod`, `create`). Pre-images cost storage for every update and delete: size them
 * with the server's `changeStreamOptions.preAndPostImages.expireAfterSeconds`.
 * @throws the server's error where it has no pre-images (MongoDB before 6.0, mongo-java-server).
 */
export async function enablePreImages(data: DataLayer, collections: readonly string[]): Promise<void> {
  const database = data.client.databaseName;
  const infos = await collectionInfos(data, database, collections);
  const existing = new Set(infos.map((info) => info.name));
  // Time-series collections have no change streams, hence no pre-images.
  const timeSeries = new Set(infos.filter((info) => info.type === 'timeseries').map((info) => info.name));
  for (const collection of collections.filter((name) => !timeSeries.has(name))) {
    const command = existing.has(collection)
      ? { collMod: collection, changeStreamPreAndPostImages: { enabled: true } }
      : { create: collection, changeStreamPreAndPostImages: { enabled: true } };
    await data.admin.runCommand(database, command, { name: 'backup.enablePreImages', idempotent: true });
  }
}
