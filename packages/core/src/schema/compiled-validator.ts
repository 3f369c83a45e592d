import type { z } from 'zod';

/**
 * Compiled validators: a zod schema turned once into plain closures that accept the common, valid
 * input in a fraction of zod's time and produce exactly zod's output. Whatever the closures are not
 * sure of (a failed check, an exotic input, a schema feature they do not know) they hand back to
 * zod, which stays the single source of truth for what is valid and for every error message.
 *
 * Why not re-implement the checks: string lengths, regexes, refinements and transforms all run the
 * schema's own check and transform functions, so the two paths cannot disagree on a rule; only the
 * structure (objects, arrays, records, unions, optional and default wrappers) is walked here. A
 * differential property test (packages/core/test/compiled-validator.property.test.ts) holds the
 * two paths to the same outputs.
 */

/** The input's type does not match the node: definite, so a union may try its next option. */
const MISMATCH: unique symbol = Symbol('mismatch');
/** Not sure (a check failed, an unknown feature): zod decides. */
const BAIL: unique symbol = Symbol('bail');

type Outcome = unknown;
type Node = (value: unknown) => Outcome;

/** A compiled validator: the parsed value, or {@link NOT_COMPILED} when zod must decide. */
export type CompiledValidator = (value: unknown) => unknown;

/** Returned by a {@link CompiledValidator} when the input needs zod's full parse (invalid or unusual input). */
export const NOT_COMPILED: unique symbol = Symbol('caas-db.not-compiled');

// biome-ignore lint/suspicious/noExplicitAny: zod's internals (`_zod.def`) are untyped here on purpose.
type Internal = any;

/** Compiles `schema`; inputs the compiled closures are unsure of return {@link NOT_COMPILED}. */
export function compileValidator(schema: z.ZodType): CompiledValidator {
  const node = compileNode(schema as Internal, new Map());
  return (value) => {
    const outcome = node(value);
    return outcome === MISMATCH || outcome === BAIL ? NOT_COMPILED : outcome;
  };
}

const bail: Node = () => BAIL;

function compileNode(schema: Internal, seen: Map<Internal, Node>): Node {
  const known = seen.get(schema);
  if (known) return known;
  // Recursive schemas (z.lazy) refer back to a node being compiled: go through a forwarder.
  let compiled: Node = bail;
  seen.set(schema, (value) => compiled(value));
  compiled = withChecks(schema, compileType(schema, seen));
  seen.set(schema, compiled);
  return compiled;
}

/** Runs the schema's own checks (lengths, regexes, refinements) after its type-level parse. */
function withChecks(schema: Internal, parse: Node): Node {
  const own: Internal[] = schema._zod.def.checks ?? [];
  // A schema that is itself a check (string formats: datetime, email…) runs first, as in zod.
  const checks = (schema._zod.traits?.has('$ZodCheck') ? [schema, ...own] : own).map(compileCheck);
  if (checks.length === 0) return parse;
  return (value) => {
    let outcome = parse(value);
    if (outcome === MISMATCH || outcome === BAIL) return outcome;
    for (const check of checks) {
      outcome = check(outcome);
      if (outcome === BAIL) return BAIL;
    }
    return outcome;
  };
}

/**
 * One check: a shortcut for the common kinds that is only ever taken when zod's check surely passes
 * (a string no longer than its maximum in UTF-16 units is no longer in code points either), else the
 * check's own function decides.
 */
function compileCheck(check: Internal): Node {
  const def = check._zod.def;
  const exact: Node = (value) => {
    const payload = { value, issues: [] as unknown[] };
    if (def.when && !def.when(payload)) return value;
    const pending = check._zod.check(payload);
    return pending instanceof Promise || payload.issues.length > 0 ? BAIL : payload.value;
  };
  const passes = def.when && def.check !== 'max_length' && def.check !== 'min_length' ? undefined : shortcut(def);
  if (passes === undefined) return exact;
  return (value) => (passes(value) ? value : exact(value));
}

function shortcut(def: Internal): ((value: Internal) => boolean) | undefined {
  switch (def.check) {
    case 'max_length':
      return (value) => value.length <= def.maximum;
    case 'min_length':
      // A code point is one or two UTF-16 units.
      return (value) => (typeof value === 'string' ? value.length >= 2 * def.minimum - 1 : value.length >= def.minimum);
    case 'string_format':
      if (def.format !== 'regex' || !(def.pattern instanceof RegExp)) return undefined;
      return (value) => {
        def.pattern.lastIndex = 0;
        return def.pattern.test(value);
      };
    case 'greater_than':
      return (value) => (def.inclusive ? value >= def.value : value > def.value);
    case 'less_than':
      return (value) => (def.inclusive ? value <= def.value : value < def.value);
    case 'number_format':
      return def.format === 'safeint' ? (value) => Number.isSafeInteger(value) : undefined;
    case 'custom':
      // superRefine and .check() keep their function on the check itself, not as `fn`.
      return typeof def.fn === 'function' ? (value) => def.fn(value) === true : undefined;
    default:
      return undefined;
  }
}

class TransformPayload {
  readonly issues: unknown[] = [];
  constructor(public value: unknown) {}
  addIssue(issue: unknown): void {
    this.issues.push(issue);
  }
}

function compileType(schema: Internal, seen: Map<Internal, Node>): Node {
  const def = schema._zod.def;
  if (def.coerce) return bail;
  switch (def.type) {
    case 'string':
      return (value) => (typeof value === 'string' ? value : MISMATCH);
    case 'number':
      return (value) => (typeof value === 'number' && Number.isFinite(value) ? value : MISMATCH);
    case 'boolean':
      return (value) => (typeof value === 'boolean' ? value : MISMATCH);
    case 'null':
      return (value) => (value === null ? value : MISMATCH);
    case 'date':
      return (value) => (value instanceof Date ? (Number.isNaN(value.getTime()) ? BAIL : value) : MISMATCH);
    case 'enum': {
      // zod's own set of accepted values (a native enum's reverse-mapping keys are not among them).
      const values: unknown = schema._zod.values;
      if (!(values instanceof Set)) return bail;
      return (value) => (values.has(value) ? value : BAIL);
    }
    case 'literal': {
      const values = new Set(def.values as unknown[]);
      return (value) => (values.has(value) ? value : BAIL);
    }
    case 'custom': {
      // z.instanceof and z.custom: the schema's own predicate. Only `true` is taken; another truthy
      // answer (or a promise) is zod's to judge, and a falsy one is a definite refusal.
      if (typeof def.fn !== 'function') return bail;
      return (value) => {
        const verdict = def.fn(value);
        return verdict === true ? value : verdict ? BAIL : MISMATCH;
      };
    }
    case 'any':
    case 'unknown':
      return (value) => value;
    case 'optional':
      return compileOptional(schema, seen);
    case 'nullable': {
      const inner = compileNode(def.innerType, seen);
      return (value) => (value === null ? null : inner(value));
    }
    case 'default':
      return compileDefault(schema, seen);
    case 'lazy':
      return compileNode(def.getter(), seen);
    case 'pipe': {
      if (schema._zod.traits?.has('$ZodCodec')) return bail;
      const first = compileNode(def.in, seen);
      const second = compileNode(def.out, seen);
      return (value) => {
        const middle = first(value);
        return middle === MISMATCH || middle === BAIL ? middle : second(middle);
      };
    }
    case 'transform':
      return (value) => {
        const payload = new TransformPayload(value);
        const output = def.transform(value, payload);
        return output instanceof Promise || payload.issues.length > 0 ? BAIL : output;
      };
    case 'union':
      return compileUnion(schema, seen);
    case 'array':
      return compileArray(schema, seen);
    case 'record':
      return compileRecord(schema, seen);
    case 'object':
      return compileObject(schema, seen);
    default:
      return bail;
  }
}

function compileOptional(schema: Internal, seen: Map<Internal, Node>): Node {
  // An exact optional refuses a present `undefined`: zod decides.
  if (schema._zod.traits?.has('$ZodExactOptional')) return bail;
  const innerType = schema._zod.def.innerType;
  // An optional around a default substitutes for absence; zod's rules for that are subtle: let it decide.
  if (innerType._zod.optin === 'defaulted') return bail;
  const inner = compileNode(innerType, seen);
  return (value) => (value === undefined ? undefined : inner(value));
}

function compileDefault(schema: Internal, seen: Map<Internal, Node>): Node {
  const def = schema._zod.def;
  const inner = compileNode(def.innerType, seen);
  return (value) => {
    // zod returns the default (a fresh copy) without validating it.
    if (value === undefined) return def.defaultValue;
    const outcome = inner(value);
    return outcome === undefined ? BAIL : outcome;
  };
}

function compileUnion(schema: Internal, seen: Map<Internal, Node>): Node {
  const traits: Set<string> | undefined = schema._zod.traits;
  if (
    !traits ||
    [...traits].some((trait) => trait !== '$ZodUnion' && trait !== 'ZodUnion' && trait !== '$ZodType' && trait !== 'ZodType')
  ) {
    return bail;
  }
  const options = (schema._zod.def.options as Internal[]).map((option) => compileNode(option, seen));
  return (value) => {
    // zod returns the first option that succeeds; an option we cannot decide ends the search.
    for (const option of options) {
      const outcome = option(value);
      if (outcome !== MISMATCH) return outcome;
    }
    // Every option refused the input's type: zod refuses it too.
    return MISMATCH;
  };
}

function compileArray(schema: Internal, seen: Map<Internal, Node>): Node {
  const element = compileNode(schema._zod.def.element, seen);
  return (value) => {
    if (!Array.isArray(value)) return MISMATCH;
    const output = new Array(value.length);
    for (let index = 0; index < value.length; index += 1) {
      const item = element(value[index]);
      if (item === MISMATCH || item === BAIL) return BAIL;
      output[index] = item;
    }
    return output;
  };
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value);
  return (prototype === Object.prototype || prototype === null) && Object.getOwnPropertySymbols(value).length === 0;
}

function compileRecord(schema: Internal, seen: Map<Internal, Node>): Node {
  const def = schema._zod.def;
  // Only string-keyed records; enum keys make zod require every key, which the closures do not do.
  if (def.keyType._zod.def.type !== 'string' && def.keyType._zod.def.type !== 'pipe') return bail;
  const key = compileNode(def.keyType, seen);
  const valueNode = compileNode(def.valueType, seen);
  return (value) => {
    if (!isPlainRecord(value)) return typeof value === 'object' && value !== null ? BAIL : MISMATCH;
    const output: Record<string, unknown> = {};
    for (const name of Object.keys(value)) {
      const outputKey = key(name);
      if (typeof outputKey !== 'string' || outputKey === '__proto__') return BAIL;
      const item = valueNode(value[name]);
      if (item === MISMATCH || item === BAIL || item === undefined) return BAIL;
      output[outputKey] = item;
    }
    return output;
  };
}

interface Field {
  key: string;
  node: Node;
  optin: string | undefined;
  optout: string | undefined;
}

function compileObject(schema: Internal, seen: Map<Internal, Node>): Node {
  const def = schema._zod.def;
  const shape = def.shape as Record<string, Internal>;
  if (Object.getOwnPropertySymbols(shape).length > 0) return bail;
  const catchall = def.catchall?._zod.def.type;
  // Strict objects refuse unknown keys; stripping objects drop them. Passthrough and catchall: zod.
  if (catchall !== undefined && catchall !== 'never') return bail;
  const strict = catchall === 'never';
  const fields: Field[] = Object.keys(shape)
    .filter((key) => key !== '__proto__')
    .map((key) => ({ key, node: compileNode(shape[key], seen), optin: shape[key]._zod.optin, optout: shape[key]._zod.optout }));
  const known = new Set(fields.map((field) => field.key));
  const count = fields.length;
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return MISMATCH;
    // Inherited keys: zod's `in` and `for…in` see them; let zod decide. (Symbol keys zod ignores.)
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) return BAIL;
    const input = value as Record<string, unknown>;
    if (strict) {
      for (const key in input) if (!known.has(key)) return BAIL;
    }
    const output: Record<string, unknown> = {};
    for (let index = 0; index < count; index += 1) {
      const { key, node, optin, optout } = fields[index] as Field;
      const present = key in input;
      if (!present && optout === 'optional' && optin === 'optional') continue;
      const outcome = node(input[key]);
      if (outcome === MISMATCH || outcome === BAIL) return BAIL;
      if (!present && optin === undefined) return BAIL;
      if (outcome === undefined) {
        if (present || (optin === 'defaulted' && optout !== 'optional')) output[key] = undefined;
      } else {
        output[key] = outcome;
      }
    }
    return output;
  };
}
