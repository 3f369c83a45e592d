import { ObjectId } from 'mongodb';
import { z } from 'zod';

/** A 24-character hexadecimal ObjectId string. */
const OBJECT_ID_HEX = /^[0-9a-fA-F]{24}$/;

/**
 * An ObjectId, accepted as an `ObjectId` or as its 24-character hex string, always output as an
 * `ObjectId`. Anything else (a 12-character string, a number, a look-alike object) is refused.
 */
export const objectIdSchema = z
  .union([z.instanceof(ObjectId), z.string().regex(OBJECT_ID_HEX, 'must be a 24-character hex ObjectId')])
  .transform((value) => (typeof value === 'string' ? ObjectId.createFromHexString(value) : value));

/** What callers may pass where an id is expected. */
export type IdInput = ObjectId | string;

/** A date, accepted as a `Date` or an ISO-8601 string, output as a `Date`. */
export const dateSchema = z.union([z.date(), z.iso.datetime({ offset: true }).transform((value) => new Date(value))]).pipe(z.date());

/** A bounded, trimmed-free string: user text never exceeds `max` characters and contains no NUL. */
export function text(max: number, min = 0) {
  return z
    .string()
    .min(min)
    .max(max)
    .refine((value) => !value.includes('\0'), 'must not contain NUL characters');
}

/** An identifier chosen by a tenant's application (`external_id`, keys, slugs). */
export const externalIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s$\0][^\0]*$/, 'must not start with $ or whitespace, nor contain NUL');

/**
 * A field name safe to store: no leading `$`, no `.`, no NUL, not `__proto__`, `constructor`,
 * `prototype` or `_bsontype` (which the BSON serializer would treat as a type marker).
 */
export const safeKeySchema = z
  .string()
  .min(1)
  .max(128)
  .refine((key) => isSafeKey(key), 'must not start with $, contain . or NUL, or be a reserved name');

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype', '_bsontype']);

/** True when `key` can be stored as a field name (see {@link safeKeySchema}). */
export function isSafeKey(key: string): boolean {
  return key.length > 0 && !key.startsWith('$') && !key.includes('.') && !key.includes('\0') && !RESERVED_KEYS.has(key);
}

/** A JSON-like value whose every key is safe, at most `depth` levels deep. */
type FreeValue = string | number | boolean | null | Date | FreeValue[] | { [key: string]: FreeValue };

function freeValueSchema(depth: number): z.ZodType<FreeValue> {
  const leaf = z.union([text(16_384), z.number().finite(), z.boolean(), z.null(), z.date()]);
  if (depth === 0) return leaf;
  const nested = z.lazy(() => freeValueSchema(depth - 1));
  return z.union([leaf, z.array(nested).max(1000), z.record(safeKeySchema, nested)]) as z.ZodType<FreeValue>;
}

/**
 * Client-defined data (`custom_data`, `metadata`, `properties`): any JSON-like value, keys checked
 * at every level, bounded in depth (8) and size (1000 keys or items per level).
 */
export const freeFormSchema = z
  .record(safeKeySchema, freeValueSchema(7))
  .refine((record) => Object.keys(record).length <= 1000, 'must have at most 1000 keys');

/** The type of {@link freeFormSchema}'s values. */
export type FreeForm = z.infer<typeof freeFormSchema>;

/** A tenant id: 1 to 64 characters of lowercase letters, digits, `-` and `_`, starting with a letter or digit. */
export const tenantIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be 1-64 characters of a-z, 0-9, - and _, starting with a letter or digit');
