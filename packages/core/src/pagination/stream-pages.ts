import { z } from 'zod';
import { parseInput } from '../validation-issues.js';
import type { Page } from './keyset-cursor.js';

/** Options of {@link streamPages} and `Repository.stream`. */
export interface StreamOptions {
  /** Documents per page read (one command each). @default 100 */
  batchSize?: number;
}

const streamOptionsSchema = z.strictObject({ batchSize: z.number().int().min(1).max(500).optional() });

/**
 * Turns any keyset-paginated list read into an async iteration that holds one page at a time:
 * `load` is called with `{ limit, cursor }` for each page, following `nextCursor`. Every page is
 * its own operation through the pipeline (scoped, retried, time-budgeted), so an export of millions
 * of documents runs in bounded memory and holds no server cursor between pages.
 *
 * @example
 * ```ts
 * for await (const message of streamPages((page) => acme.messages.findByConversation(id, page), { batchSize: 200 })) {
 *   await exportLine(message);
 * }
 * ```
 * @throws {ValidationError} when `batchSize` is not an integer from 1 to 500.
 */
export async function* streamPages<T>(
  load: (page: { limit: number; cursor?: string }) => Promise<Page<T>>,
  options: StreamOptions = {},
): AsyncGenerator<T, void, undefined> {
  const { batchSize = 100 } = parseInput(streamOptionsSchema, options, 'stream options');
  let cursor: string | undefined;
  do {
    const page = await load(cursor === undefined ? { limit: batchSize } : { limit: batchSize, cursor });
    yield* page.items;
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
}
