import {
  CaasDbError,
  ClientClosedError,
  ConcurrencyError,
  ConnectionError,
  CursorError,
  DuplicateKeyError,
  InvariantError,
  IsolationAuditError,
  NotFoundError,
  TenancyViolationError,
  TenantContextError,
  TenantMismatchError,
  TimeoutError,
  ValidationError,
} from '@caas-db/core';
import { QuotaExceededError, TenantNotFoundError, TenantSuspendedError } from '@caas-db/tenancy';
import { ForbiddenError, NotRegisteredError, UnauthenticatedError } from './http-errors.js';

/** The body of every error response: a stable `code` to branch on, a message for people. */
export interface ErrorBody {
  error: {
    code: string;
    message: string;
    /** For `E_VALIDATION` and `E_BAD_REQUEST`: each field that was wrong. */
    issues?: { path: string; message: string }[];
    /** `'unknown'`: the write may have been applied; read before re-sending, or re-send with the same ids. */
    outcome?: 'unknown';
  };
}

/** An HTTP response for an error. */
export interface HttpFailure {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
}

/** Seconds a client should wait before retrying after a 503 or 429 without a better estimate. */
const RETRY_AFTER_SECONDS = '1';

const tenantErrors = [TenantContextError, TenantMismatchError, TenancyViolationError, TenantNotFoundError, TenantSuspendedError];
const unavailableErrors = [ConnectionError, TimeoutError, ClientClosedError];

function failure(status: number, code: string, message: string, extra: Partial<ErrorBody['error']> = {}, headers = {}): HttpFailure {
  return { status, headers, body: { error: { code, message, ...extra } } };
}

/** A framework error that carries its own 4xx status (invalid JSON, an unsupported content type, a body too large). */
function isClientError(error: unknown): error is Error & { statusCode: number; code?: string } {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return error instanceof Error && typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * Maps an error thrown while serving a request to its HTTP response. caas-db's typed errors keep
 * their stable `code`; anything unrecognised is a 500 whose details stay in the log.
 */
export function toHttpFailure(error: unknown): HttpFailure {
  if (error instanceof CaasDbError && error.outcome === 'unknown') {
    return failure(
      503,
      error.code,
      'The write may or may not have been applied: read it back, or retry with the same ids',
      { outcome: 'unknown' },
      { 'retry-after': RETRY_AFTER_SECONDS },
    );
  }
  if (error instanceof UnauthenticatedError) {
    return failure(401, error.code, error.message, {}, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  if (error instanceof ValidationError) {
    return failure(400, error.code, error.message, { issues: error.issues.map(({ path, message }) => ({ path, message })) });
  }
  if (error instanceof CursorError) return failure(400, error.code, error.message);
  if (error instanceof NotFoundError) return failure(404, error.code, 'Not found');
  if (error instanceof ForbiddenError || error instanceof NotRegisteredError) return failure(403, error.code, error.message);
  // The message of a tenant error names tenants: the caller learns only that it was refused.
  if (tenantErrors.some((type) => error instanceof type)) return failure(403, (error as CaasDbError).code, 'Refused for this tenant');
  if (error instanceof QuotaExceededError) {
    const retryAfter = error.quota === 'writeRate' ? { 'retry-after': RETRY_AFTER_SECONDS } : {};
    return failure(429, error.code, `The ${error.quota} quota of this tenant is reached`, {}, retryAfter);
  }
  if (error instanceof DuplicateKeyError || error instanceof ConcurrencyError || error instanceof InvariantError) {
    return failure(409, error.code, error.message);
  }
  if (unavailableErrors.some((type) => error instanceof type)) {
    return failure(503, (error as CaasDbError).code, 'The data layer is unavailable', {}, { 'retry-after': RETRY_AFTER_SECONDS });
  }
  if (isClientError(error)) {
    return failure(error.statusCode, 'E_BAD_REQUEST', error.message, { issues: [{ path: 'body', message: error.message }] });
  }
  if (error instanceof IsolationAuditError) return failure(500, error.code, 'Internal error');
  return failure(500, 'E_INTERNAL', 'Internal error');
}
