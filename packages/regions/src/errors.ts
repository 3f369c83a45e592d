import { CaasDbError, type CaasDbErrorOptions } from '@caas-db/core';

/** Stable codes of `@caas-db/regions` errors (never changed once released). */
export const RegionErrorCodes = {
  RESIDENCY: 'E_RESIDENCY',
  TENANT_MOVING: 'E_TENANT_MOVING',
  TENANT_BUSY: 'E_TENANT_BUSY',
  MOVE: 'E_TENANT_MOVE',
} as const;

/**
 * A command of a tenant would have reached a cluster outside the tenant's region (or its dedicated
 * cluster), or the tenant's region has no cluster here. Nothing was sent.
 */
export class ResidencyError extends CaasDbError {
  readonly code = RegionErrorCodes.RESIDENCY;
  /** The tenant the command ran for. */
  readonly tenant: string;
  /** The cluster the command would have reached. */
  readonly cluster: string;
  /** The cluster that serves the tenant, when there is one. */
  readonly home: string | undefined;

  constructor(tenant: string, cluster: string, home: string | undefined, reason: string, options: CaasDbErrorOptions = {}) {
    super(`Tenant ${tenant}: refused on cluster ${cluster}: ${reason}`, options);
    this.tenant = tenant;
    this.cluster = cluster;
    this.home = home;
  }
}

/**
 * A write of a tenant arrived while the tenant's move between clusters holds its writes (the final
 * sync and verification). Nothing was sent; send it again once the move switched (the regional
 * data layer's repositories do that themselves, up to `moveWaitMS`).
 */
export class TenantMovingError extends CaasDbError {
  readonly code = RegionErrorCodes.TENANT_MOVING;
  readonly tenant: string;

  constructor(tenant: string, message: string, options: CaasDbErrorOptions = {}) {
    super(`Tenant ${tenant}: ${message}`, options);
    this.tenant = tenant;
  }
}

/**
 * A tenant already has its maximum of concurrent operations (and, in `queue` mode, its maximum
 * waiting): the operation was refused before anything was sent, so other tenants keep the pool.
 */
export class TenantBusyError extends CaasDbError {
  readonly code = RegionErrorCodes.TENANT_BUSY;
  readonly tenant: string;
  /** The tenant's cap of concurrent operations. */
  readonly limit: number;

  constructor(tenant: string, limit: number, detail: string) {
    super(`Tenant ${tenant} has ${limit} operations in flight (its cap): ${detail}`);
    this.tenant = tenant;
    this.limit = limit;
  }
}

/** A tenant move could not go on (aborted, verification failed, or a different move is under way). */
export class TenantMoveError extends CaasDbError {
  readonly code = RegionErrorCodes.MOVE;
  readonly tenant: string;
  /** The phase the move stopped in; calling `moveTenant` again resumes from it. */
  readonly phase: string;

  constructor(tenant: string, phase: string, message: string, options: CaasDbErrorOptions = {}) {
    super(`Moving tenant ${tenant} (${phase}): ${message}`, options);
    this.tenant = tenant;
    this.phase = phase;
  }
}
