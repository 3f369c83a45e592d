import { CaasDbError } from '@caas-db/core';

export { IsolationAuditError, TenancyViolationError, TenantContextError, TenantMismatchError } from '@caas-db/core';

/** Stable codes of the tenancy package's errors. */
export const TenancyErrorCodes = {
  TENANT_NOT_FOUND: 'E_TENANT_NOT_FOUND',
  TENANT_SUSPENDED: 'E_TENANT_SUSPENDED',
  TENANCY_VIOLATION: 'E_TENANCY_VIOLATION',
  QUOTA_EXCEEDED: 'E_QUOTA_EXCEEDED',
  ISOLATION_AUDIT: 'E_ISOLATION_AUDIT',
} as const;

/** The tenant id names no client in `clients`. Nothing was sent. */
export class TenantNotFoundError extends CaasDbError {
  readonly code = TenancyErrorCodes.TENANT_NOT_FOUND;
  readonly tenant: string;

  constructor(tenant: string) {
    super(`No client owns tenant ${JSON.stringify(tenant)}`);
    this.tenant = tenant;
  }
}

/** The tenant's client is suspended: its data stays, its requests are refused. Nothing was sent. */
export class TenantSuspendedError extends CaasDbError {
  readonly code = TenancyErrorCodes.TENANT_SUSPENDED;
  readonly tenant: string;

  constructor(tenant: string, reason?: string) {
    super(`Tenant ${JSON.stringify(tenant)} is suspended${reason ? `: ${reason}` : ''}`);
    this.tenant = tenant;
  }
}

/** Which quota was exceeded. */
export type QuotaKind = 'documents' | 'bytes' | 'writeRate';

/** A tenant quota would be exceeded. Nothing was written. */
export class QuotaExceededError extends CaasDbError {
  readonly code = TenancyErrorCodes.QUOTA_EXCEEDED;
  readonly tenant: string;
  readonly quota: QuotaKind;
  /** The collection the quota applies to (`*` for the write rate). */
  readonly collection: string;
  readonly limit: number;
  /** The usage when the write was refused. */
  readonly current: number;

  constructor(details: { tenant: string; quota: QuotaKind; collection: string; limit: number; current: number }) {
    super(`Tenant ${details.tenant} is at its ${details.quota} quota on ${details.collection}: ${details.current} of ${details.limit}`);
    this.tenant = details.tenant;
    this.quota = details.quota;
    this.collection = details.collection;
    this.limit = details.limit;
    this.current = details.current;
  }
}
