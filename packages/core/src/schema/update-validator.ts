import type { Document } from 'mongodb';
import { z } from 'zod';
import { ValidationError, type ValidationIssue } from '../errors.js';
import { toValidationIssues } from '../validation-issues.js';
import { assertSafeDocument, assertSafeFilter } from './input-guard.js';

type AnySchema = z.core.$ZodType;

function defOf(schema: AnySchema): { type: string } & Record<string, unknown> {
  return schema._zod.def as unknown as { type: string } & Record<string, unknown>;
}

/** Removes optional / nullable / default / readonly / catch wrappers and follows lazy schemas. */
function unwrap(schema: AnySchema): AnySchema {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) {
      current = def.innerType as AnySchema;
    } else if (def.type === 'lazy') {
      current = (def.getter as () => AnySchema)();
    } else if (def.type === 'pipe') {
      current = def.in as AnySchema;
    } else {
      return current;
    }
  }
}

const ARRAY_SEGMENT = /^(\d+|\$|\$\[\]|\$\[[a-z][A-Za-z0-9]*\])$/;

/**
 * The schema of the value at a dotted `path` of an object schema, or undefined when the path does
 * not exist in it. Array segments may be indexes or the positional operators `$`, `$[]`, `$[id]`.
 */
export function schemaAtPath(root: AnySchema, path: string): AnySchema | undefined {
  let current: AnySchema | undefined = root;
  for (const segment of path.split('.')) {
    if (current === undefined) return undefined;
    const base = unwrap(current);
    const def = defOf(base);
    switch (def.type) {
      case 'object': {
        const shape = def.shape as Record<string, AnySchema>;
        current = Object.hasOwn(shape, segment) ? shape[segment] : undefined;
        break;
      }
      case 'array':
        current = ARRAY_SEGMENT.test(segment) ? (def.element as AnySchema) : undefined;
        break;
      case 'record': {
        const keyCheck = z.safeParse(def.keyType as z.ZodType, segment);
        current = keyCheck.success ? (def.valueType as AnySchema) : undefined;
        break;
      }
      case 'union': {
        const options = def.options as AnySchema[];
        current = options.map((option) => schemaAtPath(option, segment)).find((found) => found !== undefined);
        break;
      }
      case 'any':
      case 'unknown':
        return base;
      default:
        return undefined;
    }
  }
  return current;
}

function isArraySchema(schema: AnySchema): boolean {
  return defOf(unwrap(schema)).type === 'array';
}

function elementOf(schema: AnySchema): AnySchema {
  return defOf(unwrap(schema)).element as AnySchema;
}

/** Update operators the validator understands; any other operator is refused. */
const SUPPORTED_OPERATORS = new Set([
  '$set',
  '$setOnInsert',
  '$unset',
  '$inc',
  '$mul',
  '$min',
  '$max',
  '$push',
  '$addToSet',
  '$pull',
  '$pullAll',
  '$currentDate',
]);

/** Options of {@link validateUpdate}. */
export interface UpdateValidationOptions {
  /** Top-level fields no caller may change (`_id`, `tenant_id`, `created_at`, ...). */
  protectedFields: ReadonlySet<string>;
  /** What is validated, for the error message. */
  subject: string;
}

function parseAt(schema: AnySchema, value: unknown, path: string, issues: ValidationIssue[]): unknown {
  const result = z.safeParse(schema as z.ZodType, value);
  if (result.success) return result.data;
  for (const issue of toValidationIssues(result.error.issues)) {
    issues.push({ ...issue, path: issue.path ? `${path}.${issue.path}` : path });
  }
  return undefined;
}

/**
 * Validates raw update operators against a document schema: every path must exist in the schema,
 * every value must be valid at its path (and is replaced by the parsed value, so `'64f…'` strings
 * become ObjectIds), numeric operators need numeric fields, array operators need arrays, and no
 * path may touch a protected field. Unknown operators, `$rename` and pipelines are refused.
 * @returns the update with parsed values.
 * @throws {ValidationError} listing every problem.
 */
export function validateUpdate(schema: AnySchema, update: unknown, options: UpdateValidationOptions): Document {
  if (typeof update !== 'object' || update === null || Array.isArray(update)) {
    throw new ValidationError(options.subject, [
      { path: '', message: 'must be an object of update operators (pipelines are not accepted)', code: 'invalid_type' },
    ]);
  }
  const issues: ValidationIssue[] = [];
  const validated: Document = {};
  const operators = Object.keys(update);
  if (operators.length === 0) issues.push({ path: '', message: 'must contain at least one operator', code: 'too_small' });

  for (const operator of operators) {
    const fields = (update as Record<string, unknown>)[operator];
    if (!SUPPORTED_OPERATORS.has(operator)) {
      issues.push({
        path: operator,
        message: `${operator.startsWith('$') ? 'unsupported update operator' : 'must be an update operator such as $set'}`,
        code: 'unsupported_operator',
      });
      continue;
    }
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      issues.push({ path: operator, message: 'must be an object of field paths', code: 'invalid_type' });
      continue;
    }
    const output: Document = {};
    for (const [path, value] of Object.entries(fields)) {
      const where = `${operator}.${path}`;
      const root = path.split('.')[0] ?? path;
      if (options.protectedFields.has(root)) {
        issues.push({ path: where, message: `${root} cannot be changed`, code: 'protected_field' });
        continue;
      }
      if (
        path.split('.').some((segment) => segment === '' || (segment.startsWith('$') && !/^\$(\[([a-z][A-Za-z0-9]*)?\])?$/.test(segment)))
      ) {
        issues.push({ path: where, message: 'is not a valid field path', code: 'invalid_path' });
        continue;
      }
      const target = schemaAtPath(schema, path);
      if (!target) {
        issues.push({ path: where, message: 'is not a field of this document', code: 'unrecognized_keys' });
        continue;
      }
      output[path] = validateOperand(operator, target, value, where, issues);
    }
    validated[operator] = output;
  }
  if (issues.length > 0) throw new ValidationError(options.subject, issues);
  return validated;
}

function validateOperand(operator: string, target: AnySchema, value: unknown, where: string, issues: ValidationIssue[]): unknown {
  switch (operator) {
    case '$set':
    case '$setOnInsert':
    case '$min':
    case '$max':
      assertSafeDocument(value, where);
      return parseAt(target, value, where, issues);
    case '$unset':
      if (!z.safeParse(target as z.ZodType, undefined).success) {
        issues.push({ path: where, message: 'is required and cannot be removed', code: 'invalid_type' });
      }
      return '';
    case '$inc':
    case '$mul':
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        issues.push({ path: where, message: 'must be a finite number', code: 'invalid_type' });
      } else if (!z.safeParse(target as z.ZodType, 0).success && !z.safeParse(target as z.ZodType, 1).success) {
        issues.push({ path: where, message: 'is not a numeric field', code: 'invalid_type' });
      }
      return value;
    case '$currentDate':
      if (!z.safeParse(target as z.ZodType, new Date()).success)
        issues.push({ path: where, message: 'is not a date field', code: 'invalid_type' });
      if (value !== true && !(typeof value === 'object' && value !== null && (value as Document).$type === 'date')) {
        issues.push({ path: where, message: "must be true or { $type: 'date' }", code: 'invalid_type' });
      }
      return value;
    case '$push':
    case '$addToSet': {
      if (!isArraySchema(target)) {
        issues.push({ path: where, message: 'is not an array field', code: 'invalid_type' });
        return value;
      }
      const element = elementOf(target);
      if (typeof value === 'object' && value !== null && '$each' in value) {
        const { $each, ...modifiers } = value as Document;
        if (!Array.isArray($each)) {
          issues.push({ path: `${where}.$each`, message: 'must be an array', code: 'invalid_type' });
          return value;
        }
        const unknownModifier = Object.keys(modifiers).find((key) => !['$slice', '$position', '$sort'].includes(key));
        if (unknownModifier)
          issues.push({ path: `${where}.${unknownModifier}`, message: 'is not a supported modifier', code: 'unsupported_operator' });
        assertSafeDocument($each, `${where}.$each`);
        return { ...modifiers, $each: $each.map((item, index) => parseAt(element, item, `${where}.$each.${index}`, issues)) };
      }
      assertSafeDocument(value, where);
      return parseAt(element, value, where, issues);
    }
    case '$pull':
      if (!isArraySchema(target)) issues.push({ path: where, message: 'is not an array field', code: 'invalid_type' });
      if (typeof value === 'object' && value !== null) assertSafeFilter(value, where);
      return value;
    case '$pullAll':
      if (!isArraySchema(target) || !Array.isArray(value)) {
        issues.push({ path: where, message: 'must be an array on an array field', code: 'invalid_type' });
        return value;
      }
      return value.map((item, index) => parseAt(elementOf(target), item, `${where}.${index}`, issues));
    default:
      return value;
  }
}

/**
 * Turns a deep-partial patch into `$set` paths: plain nested objects whose schema is an object are
 * merged field by field (`{ profile: { status: 'away' } }` → `profile.status`); arrays, records
 * and values are replaced whole.
 */
export function patchToSetPaths(schema: AnySchema, patch: Record<string, unknown>, prefix = ''): Document {
  const paths: Document = {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const fieldSchema = schemaAtPath(schema, path);
    const mergeable =
      fieldSchema !== undefined &&
      defOf(unwrap(fieldSchema)).type === 'object' &&
      typeof value === 'object' &&
      value !== null &&
      Object.getPrototypeOf(value) === Object.prototype &&
      Object.keys(value).length > 0;
    if (mergeable) Object.assign(paths, patchToSetPaths(schema, value as Record<string, unknown>, path));
    else paths[path] = value;
  }
  return paths;
}
