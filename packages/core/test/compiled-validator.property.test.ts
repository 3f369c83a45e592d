/**
 * The compiled validators against zod, the source of truth: whenever a compiled validator accepts
 * an input, zod accepts it too and produces the same output (same keys in the same order, the same
 * `undefined` properties, equal ObjectIds and dates); the compiled path is used for ordinary valid
 * documents of every repository.
 */
import fc from 'fast-check';
import { ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  apiKeysDefinition,
  applicationsDefinition,
  auditLogsDefinition,
  billingDefinition,
  clientsDefinition,
  conversationsDefinition,
  eventsDefinition,
  filesDefinition,
  groupsDefinition,
  messagesDefinition,
  metricsDefinition,
  objectIdSchema,
  settingsDefinition,
  usersDefinition,
} from '../src/index.js';
import { compileValidator, NOT_COMPILED } from '../src/schema/compiled-validator.js';

const RUNS = Number(process.env.CAAS_DB_FUZZ_RUNS ?? 3000);

/** A description of a value precise enough to tell zod's output from a near miss. */
function shapeOf(value: unknown): unknown {
  if (value instanceof ObjectId) return ['oid', value.toHexString()];
  if (value instanceof Date) return ['date', value.getTime()];
  if (Array.isArray(value)) return ['array', value.length, ...value.map(shapeOf)];
  if (value !== null && typeof value === 'object') {
    return [
      'object',
      Object.getPrototypeOf(value) === null,
      ...Object.keys(value).map((key) => [key, shapeOf((value as Record<string, unknown>)[key])]),
    ];
  }
  if (typeof value === 'number' && Object.is(value, -0)) return ['-0'];
  return [typeof value, value];
}

const hex = () => new ObjectId().toHexString();

/** Values that sit on or near a rule's edge, of every type a field may receive. */
const edgeValue = fc.oneof(
  fc.constantFrom(
    undefined,
    null,
    '',
    'a',
    'text',
    'sent',
    'deleted',
    'user',
    'direct',
    'group',
    'Acme',
    'acme',
    '$where',
    'a.b',
    '__proto__',
    'x\u0000y',
    '😀'.repeat(40),
    'token_aaaaaaaa',
    0,
    -0,
    1,
    -1,
    1.5,
    2 ** 53,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    true,
    false,
    new Date(0),
    new Date(Number.NaN),
    '2026-01-01T00:00:00Z',
    '2026-01-01',
    [],
    {},
    Object.create(null),
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.constant(null).map(() => new ObjectId()),
  fc.constant(null).map(hex),
  fc.constant(null).map(() => hex().slice(1)),
  fc.array(fc.string({ maxLength: 12 }), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
  fc.nat({ max: 5000 }).map((length) => 'x'.repeat(length)),
  fc.nat({ max: 40 }).map((length) => '😀'.repeat(length)),
);

type Mutation = { path: string[]; value: unknown; remove: boolean };

function mutate(base: unknown, mutation: Mutation): unknown {
  const copy = structuredCloneWithIds(base);
  let target = copy as Record<string, unknown>;
  for (const segment of mutation.path.slice(0, -1)) {
    const next = target?.[segment];
    if (next === null || typeof next !== 'object') return copy;
    target = next as Record<string, unknown>;
  }
  const last = mutation.path.at(-1);
  if (last === undefined || target === null || typeof target !== 'object') return copy;
  if (mutation.remove) delete target[last];
  else target[last] = mutation.value;
  return copy;
}

function structuredCloneWithIds(value: unknown): unknown {
  if (value instanceof ObjectId || value instanceof Date) return value;
  if (Array.isArray(value)) return value.map(structuredCloneWithIds);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, structuredCloneWithIds(item)]));
  }
  return value;
}

/** Every path of a document, so mutations reach nested fields too. */
function pathsOf(value: unknown, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== 'object' || value instanceof ObjectId || value instanceof Date) return [prefix];
  const keys = Array.isArray(value) ? value.map((_, index) => String(index)) : Object.keys(value);
  return [prefix, ...keys.flatMap((key) => pathsOf((value as Record<string, unknown>)[key], [...prefix, key]))].filter(
    (path) => path.length > 0,
  );
}

const now = new Date('2026-11-30T00:00:00Z');

/** A valid creation input for each repository: the compiled path must take these. */
const samples: Array<{ name: string; schema: z.ZodType; valid: Record<string, unknown> }> = [
  {
    name: 'messages',
    schema: messagesDefinition.schema,
    valid: {
      tenant_id: 'acme',
      conversation_id: hex(),
      sender_id: new ObjectId(),
      content: { type: 'text', encrypted_data: 'x'.repeat(64), encrypted_key: { [hex()]: 'k'.repeat(16) }, encrypted_preview: 'p' },
      thread: { parent_id: hex() },
      search_tokens: ['token_aaaaaaaa', 'token_bbbbbbbb'],
      search_key_version: 2,
    },
  },
  {
    name: 'users',
    schema: usersDefinition().schema,
    valid: {
      tenant_id: 'acme',
      external_id: 'user-1',
      profile: { display_name: 'Ada', avatar_url: 'https://example.com/a.png', custom_data: { team: 'core', level: 3, tags: ['a'] } },
      last_seen: now,
    },
  },
  {
    name: 'conversations',
    schema: conversationsDefinition.schema,
    valid: {
      tenant_id: 'acme',
      type: 'group',
      dedupe_key: 'group:1',
      participants: [{ user_id: hex(), role: 'admin', joined_at: now, settings: { muted: false, pinned: true } }],
      metadata: { name: 'Team' },
    },
  },
  {
    name: 'events',
    schema: eventsDefinition.schema,
    valid: {
      tenant_id: 'acme',
      type: 'message.sent',
      user_id: hex(),
      properties: { a: 1, nested: { b: [true, 'x', null] } },
      occurred_at: now,
    },
  },
];

/** The other repositories' schemas, exercised with mutated inputs only. */
const otherSchemas: Array<[string, z.ZodType]> = [
  ['files', filesDefinition.schema],
  ['groups', groupsDefinition.schema],
  ['settings', settingsDefinition.schema],
  ['clients', clientsDefinition.schema],
  ['applications', applicationsDefinition.schema],
  ['api_keys', apiKeysDefinition.schema],
  ['billing', billingDefinition.schema],
  ['audit_logs', auditLogsDefinition.schema],
  ['metrics', metricsDefinition.schema],
];

function expectSameAsZod(schema: z.ZodType, compiled: (value: unknown) => unknown, input: unknown): boolean {
  const fast = compiled(input);
  if (fast === NOT_COMPILED) return false;
  const reference = schema.safeParse(input);
  expect(reference.success, `compiled accepted what zod refuses: ${reference.error?.message}`).toBe(true);
  expect(shapeOf(fast)).toEqual(shapeOf(reference.data));
  return true;
}

describe('compiled validators agree with zod', () => {
  for (const { name, schema, valid } of samples) {
    it(`${name}: a valid document takes the compiled path with zod's output`, () => {
      const create = (schema as z.ZodObject).extend({ _id: objectIdSchema.optional() });
      const compiled = compileValidator(create);
      const parsed = schema.safeParse(valid);
      expect(parsed.success, parsed.error?.message).toBe(true);
      expect(expectSameAsZod(create, compiled, valid)).toBe(true);
    });

    it(`${name}: mutated inputs are accepted only as zod accepts them`, () => {
      const create = (schema as z.ZodObject).extend({ _id: objectIdSchema.optional() });
      const compiled = compileValidator(create);
      const paths = pathsOf(valid);
      const extraPaths = [['_id'], ['unknown_field'], ['content', 'extra'], ['__proto__']];
      let accepted = 0;
      fc.assert(
        fc.property(
          fc.array(fc.record({ path: fc.constantFrom(...paths, ...extraPaths), value: edgeValue, remove: fc.boolean() }), {
            minLength: 1,
            maxLength: 3,
          }),
          (mutations) => {
            const input = mutations.reduce<unknown>((document, mutation) => mutate(document, mutation), valid);
            if (expectSameAsZod(create, compiled, input)) accepted += 1;
          },
        ),
        { numRuns: RUNS },
      );
      // The property is only meaningful if the compiled path accepted some of the mutants.
      expect(accepted).toBeGreaterThan(0);
    });
  }

  for (const [name, schema] of otherSchemas) {
    it(`${name}: arbitrary objects are accepted only as zod accepts them`, () => {
      const compiled = compileValidator(schema);
      const keys = Object.keys((schema as z.ZodObject).shape);
      fc.assert(
        fc.property(fc.dictionary(fc.constantFrom(...keys, 'other'), edgeValue, { maxKeys: keys.length }), (input) => {
          expectSameAsZod(schema, compiled, { tenant_id: 'acme', ...input });
        }),
        { numRuns: Math.ceil(RUNS / 3) },
      );
    });
  }

  it('the primitives: ids, dates, defaults, unions and refinements', () => {
    const schema = z.strictObject({
      id: objectIdSchema,
      when: z.union([z.date(), z.iso.datetime().transform((value) => new Date(value))]).optional(),
      list: z.array(z.string().max(3)).default([]),
      count: z.number().int().min(0).default(0),
      note: z
        .string()
        .refine((value) => !value.includes('!'), 'no bangs')
        .nullable()
        .optional(),
    });
    const compiled = compileValidator(schema);
    fc.assert(
      fc.property(
        fc.record({ id: edgeValue, when: edgeValue, list: edgeValue, count: edgeValue, note: edgeValue }, { requiredKeys: [] }),
        (input) => {
          expectSameAsZod(schema, compiled, input);
        },
      ),
      { numRuns: RUNS },
    );
    const id = new ObjectId();
    expect(compiled({ id: id.toHexString() })).toEqual({ id, list: [], count: 0 });
    // Refused input is zod's to explain.
    expect(compiled({ id: 'nope' })).toBe(NOT_COMPILED);
    expect(compiled({ id, extra: 1 })).toBe(NOT_COMPILED);
  });
  it('schemas of callers: superRefine, check, exact optionals, native enums, truthy custom predicates', () => {
    enum Level {
      Low = 1,
      High = 2,
    }
    const cases: Array<[z.ZodType, unknown[]]> = [
      [
        z.object({ a: z.string() }).superRefine((value, ctx) => {
          if (value.a === 'bad') ctx.addIssue({ code: 'custom', message: 'no' });
        }),
        [{ a: 'ok' }, { a: 'bad' }, { a: 1 }],
      ],
      [
        z.string().check((ctx) => {
          if (ctx.value === 'bad') ctx.issues.push({ code: 'custom', message: 'no', input: ctx.value });
        }),
        ['ok', 'bad', 3],
      ],
      [z.object({ a: z.exactOptional(z.string()) }), [{ a: undefined }, {}, { a: 'x' }]],
      [z.enum(Level), ['Low', 'High', 1, 2, 3]],
      [z.union([z.custom((value) => (typeof value === 'string' ? 1 : 0)), z.string().transform((value) => `second:${value}`)]), ['x', 1]],
    ];
    for (const [schema, inputs] of cases) {
      const compiled = compileValidator(schema);
      for (const input of inputs) {
        // Twice: nothing the first call leaves behind may change the second.
        expectSameAsZod(schema, compiled, input);
        expectSameAsZod(schema, compiled, input);
      }
    }
  });
});
