/**
 * canonicalKey keys cursors and cache entries: two different values must never share a key (a
 * cursor of one query accepted for another, a cached result served for other arguments), and the
 * same value must always give the same key.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BSON, canonicalKey, ObjectId } from '../src/index.js';

const leaf = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.integer({ min: -3, max: 3 }),
  fc.double({ noNaN: true, min: -2, max: 2 }),
  fc.boolean(),
  fc.constant(null),
  fc.bigInt({ min: -3n, max: 3n }),
  fc.constantFrom(...['000000000000000000000001', '000000000000000000000002'].map((hex) => new ObjectId(hex))),
  fc.constantFrom(new Date(0), new Date(1)),
  fc.constantFrom(new BSON.Decimal128('1.5'), BSON.Long.fromNumber(7)),
);
const value = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 3 }),
  object: fc.dictionary(fc.constantFrom('a', 'b', '$in', 'a.b', '"', ''), tie('value'), { maxKeys: 3 }),
})).value;

/** Equality as MongoDB would see the value: type-exact, key order included. */
const same = (a: unknown, b: unknown) =>
  BSON.EJSON.stringify({ v: a }, { relaxed: false }) === BSON.EJSON.stringify({ v: b }, { relaxed: false }) && typeof a === typeof b;

describe('canonicalKey', () => {
  it('gives two values the same key only when they are the same value', () => {
    fc.assert(
      fc.property(value, value, (a, b) => {
        if (canonicalKey(a) === canonicalKey(b)) expect(same(a, b) || Object.is(a, b)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('is stable for one value', () => {
    fc.assert(fc.property(value, (a) => canonicalKey(a) === canonicalKey(structuredCloneBson(a))));
  });
});

/** A deep copy of the arrays and plain objects, sharing the leaves. */
function structuredCloneBson(a: unknown): unknown {
  if (Array.isArray(a)) return a.map(structuredCloneBson);
  if (a !== null && typeof a === 'object' && (Object.getPrototypeOf(a) === Object.prototype || Object.getPrototypeOf(a) === null))
    return Object.fromEntries(Object.entries(a).map(([key, child]) => [key, structuredCloneBson(child)]));
  return a;
}
