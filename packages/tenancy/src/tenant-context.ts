import { AsyncLocalStorage } from 'node:async_hooks';
import { TenantContextError, tenantIdSchema, ValidationError } from '@caas-db/core';

/**
 * One store per process, keyed by a registry symbol: a service that loads tenancy both as ESM and as
 * CommonJS has two module instances, and a tenant bound through one must be seen through the other.
 */
const slot = Symbol.for('@caas-db/tenancy/tenant-context');
const registry = globalThis as unknown as Record<symbol, AsyncLocalStorage<string> | undefined>;
registry[slot] ??= new AsyncLocalStorage<string>();
const storage: AsyncLocalStorage<string> = registry[slot];

/** The tenant of the current call, set by {@link runWithTenant}. */
export function currentTenant(): string | undefined {
  return storage.getStore();
}

/** The tenant of the current call, or a `TenantContextError`. */
export function requireCurrentTenant(): string {
  const tenant = storage.getStore();
  if (tenant === undefined)
    throw new TenantContextError('No tenant is bound: wrap the call in runWithTenant(tenantId, fn) or use dataLayer.forTenant(tenantId)');
  return tenant;
}

/**
 * Runs `fn` with `tenantId` as the ambient tenant: every repository used inside it, however deep
 * and across awaits, is scoped to that tenant. Meant for request handlers:
 *
 * @example
 * ```ts
 * app.use((request, response, next) => runWithTenant(request.auth.tenantId, next));
 * // ...later, anywhere in the request:
 * await data.messages.findByConversation(conversationId, { limit: 50 });
 * ```
 * @throws {ValidationError} when `tenantId` is not a valid tenant id.
 */
export function runWithTenant<T>(tenantId: string, fn: () => T): T {
  const parsed = tenantIdSchema.safeParse(tenantId);
  if (!parsed.success) {
    throw new ValidationError('tenantId', [
      { path: '', message: parsed.error.issues[0]?.message ?? 'invalid tenant id', code: 'invalid_format' },
    ]);
  }
  return storage.run(parsed.data, fn);
}
