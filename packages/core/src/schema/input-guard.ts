import { ObjectId } from 'mongodb';
import { ValidationError, type ValidationIssue } from '../errors.js';
import { isSafeKey } from './primitives.js';

/** Query operators that run JavaScript on the server; never accepted from callers. */
const SERVER_SIDE_JAVASCRIPT = new Set(['$where', '$function', '$accumulator']);

/** Keys that would reach a prototype or be taken by the BSON serializer as a type marker. */
const POISONED_KEYS = new Set(['__proto__', 'constructor', 'prototype', '_bsontype']);

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** BSON values the driver serializes natively (ObjectId, Date, RegExp, Binary, Decimal128, ...). */
function isBsonValue(value: object): boolean {
  return value instanceof ObjectId || value instanceof Date || value instanceof RegExp || Symbol.for('@@mdb.bson.version') in value;
}

/** An upper bound of a value's BSON size, added up while it is walked (Infinity when unknown). */
interface SizeBound {
  bytes: number;
}

/** An upper bound of the encoded size of a BSON leaf value (Infinity for kinds not sized here). */
function leafBound(value: object): number {
  if (value instanceof ObjectId) return 12;
  if (value instanceof Date) return 8;
  if (value instanceof RegExp) return value.source.length * 3 + value.flags.length + 2;
  const binary =
    (value as { buffer?: unknown; _bsontype?: unknown })._bsontype === 'Binary' ? (value as { buffer?: unknown }).buffer : value;
  if (ArrayBuffer.isView(binary)) return binary.byteLength + 5;
  switch ((value as { _bsontype?: unknown })._bsontype) {
    case 'Decimal128':
      return 16;
    case 'Long':
    case 'Timestamp':
    case 'Double':
    case 'Int32':
    case 'MinKey':
    case 'MaxKey':
      return 8;
    default:
      return Number.POSITIVE_INFINITY;
  }
}

function inspect(
  value: unknown,
  path: string,
  issues: ValidationIssue[],
  mode: 'filter' | 'document',
  depth: number,
  size?: SizeBound,
): void {
  if (depth > 32) {
    issues.push({ path, message: 'is nested more than 32 levels deep', code: 'too_deep' });
    return;
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    issues.push({ path, message: `must not be a ${typeof value}`, code: 'invalid_type' });
    return;
  }
  if (typeof value !== 'object' || value === null) {
    // Three bytes per UTF-16 unit bound a string's UTF-8 length; every other scalar is at most 8.
    if (size) size.bytes += typeof value === 'string' ? value.length * 3 + 5 : 8;
    return;
  }
  if (Array.isArray(value)) {
    if (size) size.bytes += 5 + value.length * 9; // element type bytes and index keys of up to 7 digits
    value.forEach((item, index) => {
      inspect(item, path ? `${path}.${index}` : String(index), issues, mode, depth + 1, size);
    });
    return;
  }
  if (isBsonValue(value)) {
    if (size) size.bytes += leafBound(value);
    return;
  }
  if (!isPlainObject(value)) {
    issues.push({ path, message: 'must be a plain object, an array or a BSON value', code: 'invalid_type' });
    return;
  }
  // Own or inherited: the serializer would write what toBSON returns, not what was checked.
  if (typeof (value as { toBSON?: unknown }).toBSON === 'function') {
    issues.push({ path: path ? `${path}.toBSON` : 'toBSON', message: 'must not have a toBSON method', code: 'invalid_type' });
    return;
  }
  if (size) size.bytes += 5;
  for (const key of Object.keys(value)) {
    if (size) size.bytes += key.length * 3 + 2;
    const child = path ? `${path}.${key}` : key;
    if (POISONED_KEYS.has(key)) {
      issues.push({ path: child, message: `the key '${key}' is not allowed`, code: 'forbidden_key' });
      continue;
    }
    if (mode === 'filter' && SERVER_SIDE_JAVASCRIPT.has(key)) {
      issues.push({ path: child, message: `${key} (server-side JavaScript) is not allowed`, code: 'forbidden_operator' });
      continue;
    }
    if (mode === 'document' && !isSafeKey(key)) {
      issues.push({ path: child, message: 'field names must not start with $ or contain . or NUL', code: 'forbidden_key' });
      continue;
    }
    inspect((value as Record<string, unknown>)[key], child, issues, mode, depth + 1, size);
  }
}

/**
 * Refuses a caller-supplied filter that could do harm: server-side JavaScript (`$where`,
 * `$function`, `$accumulator`), prototype or BSON-marker keys (`__proto__`, `_bsontype`),
 * functions, class instances that are not BSON values, and absurd nesting.
 * @throws {ValidationError}
 */
export function assertSafeFilter(filter: unknown, subject = 'filter'): void {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new ValidationError(subject, [{ path: '', message: 'must be an object', code: 'invalid_type' }]);
  }
  const issues: ValidationIssue[] = [];
  inspect(filter, '', issues, 'filter', 0);
  if (issues.length > 0) throw new ValidationError(subject, issues);
}

/**
 * Refuses a value about to be stored whose keys could be read as operators or type markers:
 * a key starting with `$`, containing `.` or NUL, or `__proto__` / `_bsontype`, at any depth.
 * @returns an upper bound of its encoded BSON size in bytes (Infinity when a value kind is not
 * sized here), measured on the same walk, so a caller computes the exact size only when the bound
 * comes near a limit.
 * @throws {ValidationError}
 */
export function assertSafeDocument(document: unknown, subject: string): number {
  const issues: ValidationIssue[] = [];
  const size: SizeBound = { bytes: 0 };
  inspect(document, '', issues, 'document', 0, size);
  if (issues.length > 0) throw new ValidationError(subject, issues);
  return size.bytes;
}
