import { BSON, ObjectId } from 'mongodb';

/**
 * Writes `value` into `parts` as an unambiguous string: every value carries its type, strings are
 * JSON-quoted, and object keys keep their order (it matters to MongoDB). Two different filters
 * never give the same key. The common filter values are written directly; others through EJSON.
 */
function writeKey(value: unknown, parts: string[]): void {
  switch (typeof value) {
    case 'string':
      parts.push(JSON.stringify(value));
      return;
    case 'number':
      parts.push(`n${value}`);
      return;
    case 'boolean':
      parts.push(value ? 't' : 'f');
      return;
    case 'undefined':
      parts.push('u');
      return;
    case 'bigint':
      parts.push(`b${value}`);
      return;
    case 'object':
      break;
    default:
      parts.push(`?${typeof value}`);
      return;
  }
  if (value === null) {
    parts.push('z');
  } else if (Array.isArray(value)) {
    parts.push('[');
    for (const item of value) {
      writeKey(item, parts);
      parts.push(',');
    }
    parts.push(']');
  } else if (value instanceof ObjectId) {
    parts.push(`o${value.toHexString()}`);
  } else if (value instanceof Date) {
    parts.push(`d${value.getTime()}`);
  } else if (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) {
    parts.push('{');
    for (const key in value) {
      parts.push(JSON.stringify(key), ':');
      writeKey((value as Record<string, unknown>)[key], parts);
      parts.push(',');
    }
    parts.push('}');
  } else {
    parts.push(`e${BSON.EJSON.stringify({ v: value }, { relaxed: false })}`);
  }
}

/**
 * An unambiguous string of a query value (a filter, read options, a method's arguments): every
 * value carries its type, strings are JSON-quoted and object keys keep their order (it matters to
 * MongoDB), so two different values never give the same key. ObjectIds, dates, strings, numbers,
 * booleans, null, arrays and plain objects are written directly, anything else through EJSON.
 * Cheaper than `EJSON.stringify` plus a hash: the cursor fingerprints and the cache keys use it.
 */
export function canonicalKey(value: unknown): string {
  const parts: string[] = [];
  writeKey(value, parts);
  return parts.join('');
}
