import { z } from 'zod';
import { parseInput } from '../validation-issues.js';

/** Items per page when a list call names no `limit`. */
export const DEFAULT_PAGE_SIZE = 50;
/** The largest page a list call may ask for. */
export const MAX_PAGE_SIZE = 500;

/** Read and list options: page size, cursor, soft-deleted documents, projection, sort. */
const pageOptionsSchema = z.strictObject({
  limit: z.number().int().min(1).max(MAX_PAGE_SIZE).optional(),
  cursor: z.string().max(4096).nullable().optional(),
  includeDeleted: z.boolean().optional(),
  projection: z.record(z.string(), z.union([z.literal(1), z.literal(true)])).optional(),
  sort: z.strictObject({ field: z.string(), direction: z.enum(['asc', 'desc']) }).optional(),
});

/** Read options after validation. */
export type ParsedReadOptions = z.output<typeof pageOptionsSchema>;

const NO_OPTIONS: ParsedReadOptions = Object.freeze({});

/**
 * The read options most calls pass (none, or a limit, a cursor string, `includeDeleted`), checked
 * without zod; undefined for anything else, which zod then checks and reports on.
 */
function plainPageOptions(options: unknown): ParsedReadOptions | undefined {
  if (options === undefined || options === null) return NO_OPTIONS;
  if (typeof options !== 'object' || Object.getPrototypeOf(options) !== Object.prototype) return undefined;
  const { limit, cursor, includeDeleted } = options as Record<string, unknown>;
  let fields = 0;
  for (const key in options) {
    if (key !== 'limit' && key !== 'cursor' && key !== 'includeDeleted') return undefined;
    fields += 1;
  }
  if (fields === 0) return NO_OPTIONS;
  if (limit !== undefined && !(Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= MAX_PAGE_SIZE)) return undefined;
  if (cursor !== undefined && cursor !== null && !(typeof cursor === 'string' && cursor.length <= 4096)) return undefined;
  if (includeDeleted !== undefined && typeof includeDeleted !== 'boolean') return undefined;
  // A copy of the values checked: a getter cannot answer differently when read again.
  const parsed: ParsedReadOptions = {};
  if (limit !== undefined) parsed.limit = limit as number;
  if (cursor !== undefined) parsed.cursor = cursor as string | null;
  if (includeDeleted !== undefined) parsed.includeDeleted = includeDeleted as boolean;
  return parsed;
}

/**
 * Validates read options: the plain common ones without zod, anything else with zod, which names
 * what is wrong.
 * @throws {ValidationError}
 */
export function parseReadOptions(options: unknown): ParsedReadOptions {
  return plainPageOptions(options) ?? parseInput(pageOptionsSchema, options ?? {}, 'options');
}
