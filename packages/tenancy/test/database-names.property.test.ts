import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tenantDatabaseName } from '../src/index.js';

/**
 * `tenantDatabaseName` must be injective for a fixed prefix (a per-tenant `dropDatabase` or backup
 * must reach one tenant) and give legal names of at most 63 bytes. Ids cover the whole alphabet and
 * every length 1-64, with extra weight around the readable/hashed boundary, plus adversarial ids
 * that spell out hashes of other ids (`h<hex>`, `<hex>`, `r<hex>`).
 */
const FIRST = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const REST = [...FIRST, '_', '-'];
const MAX_ID = 64;
/** MongoDB's limit on database names, in bytes. */
const MAX_NAME = 63;
/** Characters MongoDB refuses in database names (any platform), and NUL. */
const ILLEGAL = /[/\\. "$*<>:|?\0]/;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

const idOfLength = (length: number) =>
  fc
    .tuple(fc.constantFrom(...FIRST), fc.array(fc.constantFrom(...REST), { minLength: length - 1, maxLength: length - 1 }))
    .map(([first, rest]) => first + rest.join(''));

/** Lengths 1-64, half of them within a few characters of where `prefix` switches to hashed names. */
const idFor = (prefix: string) => {
  const longestReadable = MAX_NAME - prefix.length - 1;
  return fc.oneof(
    fc.integer({ min: 1, max: MAX_ID }).chain(idOfLength),
    fc.integer({ min: Math.max(1, longestReadable - 3), max: Math.min(MAX_ID, longestReadable + 3) }).chain(idOfLength),
  );
};

/**
 * Ids that spell out (a prefix of) the hash of `id` behind markers a hashed name might use: the old
 * `h` marker with 32 digits, and every length around the digits a hashed name of `prefix` holds.
 */
const forgeriesOf = (id: string, prefix: string): string[] => {
  const hex = sha256(id);
  const digits = MAX_NAME - prefix.length - 2;
  const forged = new Set<string>();
  for (const marker of ['', 'h', 'r']) {
    for (const length of [1, 32, 33, digits - 1, digits, digits + 1, 64]) {
      const forgery = marker + hex.slice(0, length);
      if (forgery.length <= MAX_ID) forged.add(forgery);
    }
  }
  return [...forged];
};

const prefixArbitrary = fc.oneof(
  fc.constantFrom('caas_t', 'a', 'a_', 'abcdefghijklmnop', 'caas_t_h', 'p_______________'),
  fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/),
);

describe('tenantDatabaseName (property)', () => {
  it('maps distinct tenant ids to distinct legal names of at most 63 bytes, forged hashes included', () => {
    fc.assert(
      fc.property(
        prefixArbitrary.chain((prefix) => fc.tuple(fc.constant(prefix), fc.uniqueArray(idFor(prefix), { minLength: 2, maxLength: 12 }))),
        ([prefix, drawn]) => {
          const ids = [...new Set([...drawn, ...drawn.flatMap((id) => forgeriesOf(id, prefix))])];
          // MongoDB database names are unique case-insensitively.
          const owners = new Map<string, string>();
          const problems: string[] = [];
          for (const id of ids) {
            const name = tenantDatabaseName(id, prefix);
            if (Buffer.byteLength(name, 'utf8') > MAX_NAME) problems.push(`${name} is longer than ${MAX_NAME} bytes`);
            if (ILLEGAL.test(name) || name !== name.toLowerCase()) problems.push(`${name} is not a legal lowercase name`);
            const owner = owners.get(name.toLowerCase());
            if (owner !== undefined) problems.push(`${owner} and ${id} share ${name}`);
            owners.set(name.toLowerCase(), id);
          }
          expect(problems).toEqual([]);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('keeps the hashed names at full length: 55 hex digits with the default prefix, 45 with a 16-character one', () => {
    const long = 'a'.repeat(MAX_ID);
    expect(tenantDatabaseName(long)).toBe(`caas_t__${sha256(long).slice(0, 55)}`);
    expect(tenantDatabaseName(long, 'abcdefghijklmnop')).toBe(`abcdefghijklmnop__${sha256(long).slice(0, 45)}`);
    expect(tenantDatabaseName('a'.repeat(56))).toBe(`caas_t_${'a'.repeat(56)}`);
    expect(tenantDatabaseName('a'.repeat(57))).toMatch(/^caas_t__[0-9a-f]{55}$/);
  });

  it('regression: a 33-character id h<32 hex of sha256(X)> no longer reaches the database of the long id X', () => {
    const long = 'a'.repeat(MAX_ID);
    const forged = `h${sha256(long).slice(0, 32)}`;
    expect(tenantDatabaseName(forged)).not.toBe(tenantDatabaseName(long));
    expect(tenantDatabaseName(forged)).toBe(`caas_t_${forged}`);
  });
});
