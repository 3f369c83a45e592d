import type { z } from 'zod';
import type { ValidationIssue } from './errors.js';

/** Turns zod issues into caas-db's {@link ValidationIssue}s, each with a dotted path naming its field. */
export function toValidationIssues(issues: readonly z.core.$ZodIssue[]): ValidationIssue[] {
  return issues.map((issue) => ({
    path: issue.path.map((segment) => String(segment)).join('.'),
    message: issue.message,
    code: issue.code,
  }));
}
