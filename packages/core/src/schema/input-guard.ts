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

function inspect(value: unknown, path: string, issues: ValidationIssue[], mode: 'filter' | 'document', depth: number): void {
  if (depth > 32) {
    issues.push({ path, message: 'is nested more than 32 levels deep', code: 'too_deep' });
    return;
  }
  if (typeof value === 'function' || typeof value === 'symbol') {
    issues.push({ path, message: `must not be a ${typeof value}`, code: 'invalid_type' });
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      inspect(item, path ? `${path}.${index}` : String(index), issues, mode, depth + 1);
    });
    return;
  }
  if (isBsonValue(value)) return;
  if (!isPlainObject(value)) {
    issues.push({ path, message: 'must be a plain object, an array or a BSON value', code: 'invalid_type' });
    return;
  }
  for (const key of Object.keys(value)) {
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
    inspect((value as Record<string, unknown>)[key], child, issues, mode, depth + 1);
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
 * @throws {ValidationError}
 */
export function assertSafeDocument(document: unknown, subject: string): void {
  const issues: ValidationIssue[] = [];
  inspect(document, '', issues, 'document', 0);
  if (issues.length > 0) throw new ValidationError(subject, issues);
}
