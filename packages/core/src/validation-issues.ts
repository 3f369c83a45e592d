import type { z } from 'zod';
import { ConfigError, ValidationError, type ValidationIssue } from './errors.js';
import { type CompiledValidator, compileValidator, NOT_COMPILED } from './schema/compiled-validator.js';

/** Turns zod issues into caas-db's {@link ValidationIssue}s, each with a dotted path naming its field. */
export function toValidationIssues(issues: readonly z.core.$ZodIssue[]): ValidationIssue[] {
  return issues.map((issue) => ({
    path: issue.path.map((segment) => String(segment)).join('.'),
    message: issue.message,
    code: issue.code,
  }));
}

/**
 * Parses `value` with `schema`, or throws a `ValidationError` about `subject` listing every issue.
 * The one way input is validated at caas-db's public entry points.
 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
  const compiled = compiledFor(schema);
  if (compiled !== undefined) {
    const output = compiled(value);
    if (output !== NOT_COMPILED) return output as z.output<T>;
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(subject, toValidationIssues(result.error.issues));
  return result.data;
}

// A schema is compiled the second time it is used: schemas built per call (a fresh object each
// time) never pay for a compilation they would not reuse.
const compiledSchemas = new WeakMap<z.ZodType, CompiledValidator | 'seen'>();

function compiledFor(schema: z.ZodType): CompiledValidator | undefined {
  const entry = compiledSchemas.get(schema);
  if (entry === undefined) {
    compiledSchemas.set(schema, 'seen');
    return undefined;
  }
  if (entry !== 'seen') return entry;
  const compiled = compileValidator(schema);
  compiledSchemas.set(schema, compiled);
  return compiled;
}

/** Parses options given to a factory, or throws a `ConfigError` naming every invalid field. */
export function parseConfig<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(toValidationIssues(result.error.issues));
  return result.data;
}
