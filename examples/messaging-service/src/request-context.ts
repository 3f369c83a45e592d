import type { TenantRepositories } from '@caas-db/core';
import type { SearchApi } from '@caas-db/search';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { DataStore } from './data-store.js';
import { UnauthenticatedError } from './http-errors.js';
import { type Principal, type TokenSettings, verifyToken } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request, from its verified bearer token. */
    principal: Principal;
    /** The repositories bound to the principal's tenant: every command a handler sends is scoped to it. */
    tenant: TenantRepositories;
    /** Search bound to the principal's tenant. */
    search: SearchApi;
  }
  interface FastifyContextConfig {
    /** True for routes that need no token (`/health`). */
    public?: boolean;
  }
}

/** Options of {@link requestContext}. */
export interface RequestContextOptions {
  store: DataStore;
  tokens: TokenSettings;
}

function bearerOf(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header);
  if (!match?.[1]) throw new UnauthenticatedError('An Authorization: Bearer <token> header is required');
  return match[1];
}

/**
 * Authenticates every request (except routes marked `config: { public: true }`) and binds its
 * tenant once, in the first hook, before the body is even read. Handlers get repositories already
 * bound with `forTenant`, rather than an ambient `runWithTenant` context: the binding is part of
 * the request object, so no await, stream event or framework hook in between can lose it, and a
 * handler has no unbound repository to reach for.
 */
export const requestContext = fp(
  async (app: FastifyInstance, options: RequestContextOptions) => {
    app.decorateRequest('principal', undefined as unknown as Principal);
    app.decorateRequest('tenant', undefined as unknown as TenantRepositories);
    app.decorateRequest('search', undefined as unknown as SearchApi);
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.public) return;
      const principal = await verifyToken(bearerOf(request), options.tokens);
      request.principal = principal;
      request.tenant = options.store.data.forTenant(principal.tenant);
      request.search = options.store.search.forTenant(principal.tenant);
    });
  },
  { name: 'request-context' },
);
