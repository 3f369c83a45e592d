import { isCaasDbError, type OperationTrace } from '@caas-db/core';
import type { Attributes } from '@opentelemetry/api';

// Names from the OpenTelemetry database semantic conventions (stable since 1.33); the test checks
// them against @opentelemetry/semantic-conventions, kept out of the runtime dependencies.

/** The histogram of operation durations, in seconds. */
export const DB_CLIENT_OPERATION_DURATION = 'db.client.operation.duration';

/** The bucket boundaries the conventions advise for `db.client.operation.duration`, in seconds. */
export const DURATION_BUCKETS_S = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

/** A span's attributes for one operation. */
export function attributesOf(trace: OperationTrace): Attributes {
  return {
    'db.system.name': 'mongodb',
    'db.operation.name': trace.kind,
    ...(trace.collection !== undefined && trace.collection !== '' && { 'db.collection.name': trace.collection }),
    'caas_db.operation': trace.operation,
    ...(trace.tenant !== undefined && { 'caas_db.tenant': trace.tenant }),
  };
}

/** `{db.operation.name} {db.collection.name}`, or the operation alone for a database command. */
export function spanNameOf(trace: OperationTrace): string {
  return trace.collection ? `${trace.kind} ${trace.collection}` : trace.kind;
}

/** `error.type`: a caas-db error's stable code, else the error's class name (low cardinality). */
export function errorType(error: unknown): string {
  if (isCaasDbError(error)) return error.code;
  if (error instanceof Error) return error.name;
  return '_OTHER';
}
