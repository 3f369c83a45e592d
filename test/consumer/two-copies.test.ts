import { describe, expect, it, vi } from 'vitest';

/**
 * Two module instances of core and tenancy in one process, as a service that loads them both as ESM
 * and as CommonJS has (vi.resetModules gives a second instance of every module): errors and
 * async-context stores must agree between them. The packed-tarball version is consumer.test.ts.
 */
async function twoCopies() {
  const first = { core: await import('@caas-db/core'), tenancy: await import('@caas-db/tenancy') };
  vi.resetModules();
  const second = { core: await import('@caas-db/core'), tenancy: await import('@caas-db/tenancy') };
  expect(second.core.CaasDbError).not.toBe(first.core.CaasDbError);
  return { first, second };
}

describe('two copies of core in one process', () => {
  it('recognise each other’s errors: isCaasDbError and instanceof by class', async () => {
    const { first, second } = await twoCopies();
    const error = new second.core.ValidationError('input', [{ path: 'x', message: 'bad', code: 'custom' }]);
    expect(first.core.isCaasDbError(error)).toBe(true);
    expect(error instanceof first.core.CaasDbError).toBe(true);
    expect(error instanceof first.core.ValidationError).toBe(true);
    expect(error instanceof first.core.DuplicateKeyError).toBe(false);
    expect(first.core.isCaasDbError(new Error('plain'))).toBe(false);
    expect(first.core.isCaasDbError({ code: 'E_VALIDATION', name: 'ValidationError' })).toBe(false);
  });

  it('share the tenant context of tenancy', async () => {
    const { first, second } = await twoCopies();
    const seen = await first.tenancy.runWithTenant(
      'acme',
      () => new Promise((resolve) => setImmediate(() => resolve(second.tenancy.currentTenant()))),
    );
    expect(seen).toBe('acme');
    expect(second.tenancy.currentTenant()).toBeUndefined();
  });
});
