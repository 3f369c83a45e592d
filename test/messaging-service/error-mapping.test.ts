import {
  ClientClosedError,
  ConnectionError,
  CursorError,
  DuplicateKeyError,
  NotFoundError,
  TenantContextError,
  TenantMismatchError,
  ValidationError,
} from '@caas-db/core';
import { QuotaExceededError, TenantSuspendedError } from '@caas-db/tenancy';
import { describe, expect, it } from 'vitest';
import { toHttpFailure } from '../../examples/messaging-service/src/error-mapping.js';
import { UnauthenticatedError } from '../../examples/messaging-service/src/http-errors.js';

const quota = (kind: 'documents' | 'writeRate') =>
  new QuotaExceededError({ tenant: 'acme', quota: kind, collection: kind === 'writeRate' ? '*' : 'messages', limit: 5, current: 5 });

describe('messaging service: error mapping', () => {
  it('maps each typed error to its status and stable code', () => {
    const cases: Array<[unknown, number, string]> = [
      [new ValidationError('request body', [{ path: 'body.content', message: 'Required', code: 'invalid_type' }]), 400, 'E_VALIDATION'],
      [new CursorError('tampered'), 400, 'E_CURSOR'],
      [new UnauthenticatedError('no token'), 401, 'E_UNAUTHENTICATED'],
      [new NotFoundError('messages', 'x'), 404, 'E_NOT_FOUND'],
      [new TenantContextError('no tenant'), 403, 'E_TENANT_CONTEXT'],
      [new TenantMismatchError('acme', 'globex', 'filter'), 403, 'E_TENANT_MISMATCH'],
      [new TenantSuspendedError('acme'), 403, 'E_TENANT_SUSPENDED'],
      [quota('documents'), 429, 'E_QUOTA_EXCEEDED'],
      [new DuplicateKeyError({ key: { external_id: 'alice' } }), 409, 'E_DUPLICATE_KEY'],
      [new ConnectionError('down'), 503, 'E_CONNECTION'],
      [new ClientClosedError(), 503, 'E_CLIENT_CLOSED'],
      [new Error('boom'), 500, 'E_INTERNAL'],
    ];
    expect(cases.map(([error]) => [toHttpFailure(error).status, toHttpFailure(error).body.error.code])).toEqual(
      cases.map(([, status, code]) => [status, code]),
    );
  });

  it('names the fields of a validation error, and hides what tenant errors and internal errors say', () => {
    const validation = toHttpFailure(new ValidationError('request body', [{ path: 'body.content.type', message: 'Invalid', code: 'x' }]));
    expect(validation.body.error.issues).toEqual([{ path: 'body.content.type', message: 'Invalid' }]);
    expect(toHttpFailure(new TenantMismatchError('acme', 'globex', 'filter')).body.error.message).not.toContain('globex');
    expect(toHttpFailure(new Error('connection string mongodb://secret')).body.error.message).toBe('Internal error');
  });

  it('answers 503 with Retry-After and outcome unknown for a write that may have been applied', () => {
    const error = new ConnectionError('connection reset with the insert in flight');
    error.outcome = 'unknown';
    const failure = toHttpFailure(error);
    expect(failure.status).toBe(503);
    expect(failure.headers['retry-after']).toBe('1');
    expect(failure.body.error).toMatchObject({ code: 'E_CONNECTION', outcome: 'unknown' });
  });

  it('gives a write-rate 429 a Retry-After, a document quota none (waiting does not help)', () => {
    expect(toHttpFailure(quota('writeRate')).headers).toEqual({ 'retry-after': '1' });
    expect(toHttpFailure(quota('documents')).headers).toEqual({});
  });
});
