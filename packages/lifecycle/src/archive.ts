import { type ArchiveTarget, createArchiveWriter, type KeyProvider, listArchives, openArchive } from '@caas-db/archive';
import { type Document, parseInput, tenantIdSchema, ValidationError } from '@caas-db/core';
import { z } from 'zod';
import type { Clock } from './clock.js';
import type { Archiver } from './purge-engine.js';

/** Where archive-before-purge writes: a target of `@caas-db/archive` (filesystem or object storage) and the key provider. */
export interface LifecycleArchiveOptions {
  target: ArchiveTarget;
  keyProvider: KeyProvider;
}

/** The time field each archived collection is read back by. */
const timeFields: Record<string, string> = { messages: 'created_at', events: 'occurred_at' };

function prefixOf(tenant: string, collection: string): string {
  return `lifecycle/${tenant}/${collection}/`;
}

/**
 * The archiver the purge engine calls before each batch it removes: the batch becomes one archive
 * of the shared `@caas-db/archive` format (gzip, AES-256-GCM, SHA-256 per chunk and archive, an
 * authenticated manifest with the count and the time range), finished (so durable on the target)
 * before the engine deletes anything. A failure to archive stops the purge with nothing deleted.
 */
export function createArchiver(options: LifecycleArchiveOptions, clock: Clock): Archiver {
  return async (tenant, collection, documents) => {
    if (documents.length === 0) return;
    const field = timeFields[collection] ?? 'created_at';
    const times = documents.map((document) => (document[field] instanceof Date ? (document[field] as Date).getTime() : 0));
    const from = Math.min(...times);
    const to = Math.max(...times);
    const name = `${prefixOf(tenant, collection)}${String(from).padStart(15, '0')}-${String(documents[0]?._id)}`;
    const writer = await createArchiveWriter({
      target: options.target,
      keyProvider: options.keyProvider,
      name,
      kind: 'lifecycle',
      overwrite: true,
    });
    try {
      await writer.writeMany(collection, documents);
      await writer.finish({
        tenant,
        collection,
        count: documents.length,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        archived_at: clock().toISOString(),
      });
    } catch (error) {
      await writer.abort().catch(() => undefined);
      throw error;
    }
  };
}

const rangeSchema = z.strictObject({ from: z.date(), to: z.date() });

/**
 * Reads archived documents of a tenant back, oldest archive first: those whose time field
 * (`created_at` for messages, `occurred_at` for events) is in `[from, to)`. Each archive's manifest
 * is authenticated and each chunk checked before any of its documents is yielded.
 */
export async function* readArchived(
  options: LifecycleArchiveOptions,
  tenant: string,
  range: { from: Date; to: Date },
  collection: 'messages' | 'events' = 'messages',
): AsyncGenerator<Document> {
  const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
  const { from, to } = parseInput(rangeSchema, range, 'range');
  if (collection !== 'messages' && collection !== 'events')
    throw new ValidationError('collection', [{ path: '', message: 'must be messages or events', code: 'invalid_value' }]);
  const field = timeFields[collection] ?? 'created_at';
  for (const listing of await listArchives(options.target, prefixOf(tenantId, collection))) {
    const metadata = listing.metadata as { from?: string; to?: string; tenant?: string };
    if (metadata.tenant !== tenantId) continue;
    if (metadata.to !== undefined && new Date(metadata.to).getTime() < from.getTime()) continue;
    if (metadata.from !== undefined && new Date(metadata.from).getTime() >= to.getTime()) continue;
    const reader = await openArchive({ target: options.target, keyProvider: options.keyProvider, name: listing.name });
    for await (const document of reader.documents(collection)) {
      const at = document[field];
      if (at instanceof Date && at.getTime() >= from.getTime() && at.getTime() < to.getTime()) yield document;
    }
  }
}
