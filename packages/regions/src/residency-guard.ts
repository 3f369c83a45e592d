import type { Middleware } from '@caas-db/core';
import { relocationGrant } from '@caas-db/core/unsafe';
import { ResidencyError, TenantMovingError } from './errors.js';
import type { ClusterInfo, TenantRouter } from './tenant-router.js';

/**
 * The `context` layer of every cluster of a regional data layer: a command of a tenant runs only on
 * the cluster that serves the tenant (`ResidencyError` otherwise, before anything is sent), writes
 * wait out the fenced phase of the tenant's move (`TenantMovingError`), and a move's own copy and
 * cleanup (the relocation grant) reach only the move's two clusters. Commands without a tenant are
 * platform work on this cluster (index sync, reports) and pass.
 */
export function residencyGuard(cluster: ClusterInfo, router: TenantRouter): Middleware {
  return {
    name: 'residency',
    phase: 'context',
    async handle(ctx, next) {
      const tenant = ctx.tenant;
      if (tenant === undefined) return next();
      const route = router.cached(tenant) ?? (await router.resolve(tenant));
      const { move } = route;
      if (ctx.grant === relocationGrant) {
        if (move && (move.from === cluster.name || move.to === cluster.name)) return next();
        throw new ResidencyError(tenant, cluster.name, route.home, `${ctx.operation}: no move of the tenant involves this cluster`);
      }
      if (route.home !== cluster.name)
        throw new ResidencyError(tenant, cluster.name, route.home, `${ctx.operation}: the tenant is served by ${route.home}`);
      if (move?.phase === 'fenced' && move.from === cluster.name && ctx.aspects.access === 'write')
        throw new TenantMovingError(tenant, `${ctx.operation}: writes wait while the move to ${move.to} syncs and verifies`);
      return next();
    },
  };
}
