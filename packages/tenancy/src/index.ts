/**
 * @caas-db/tenancy: tenant isolation at the one place every command passes.
 * See docs/multi-tenancy.md.
 */

// The one tenant scoper lives in core (used by forTenant and by this plugin alike); re-exported for compatibility.
export { assertNoServerSideJavaScript, scopeCommand, scopePipeline, scopeUpdate, withTenant } from '@caas-db/core';
export {
  IsolationAuditError,
  QuotaExceededError,
  type QuotaKind,
  TenancyErrorCodes,
  TenancyViolationError,
  TenantContextError,
  TenantMismatchError,
  TenantNotFoundError,
  TenantSuspendedError,
} from './errors.js';
export {
  type AuditMode,
  type AuditorEvents,
  auditCommand,
  IsolationAuditor,
  type IsolationAuditorOptions,
  type IsolationViolation,
  missingShardKeyFields,
  tenantPredicatesOf,
} from './isolation-auditor.js';
export { QuotaEnforcer, type QuotaLimits, type QuotaOptions, TenantUsageRepository, tenantUsageDefinition } from './quotas.js';
export {
  InProcessRateLimitStore,
  type RateLimitStore,
  type RedisEvaluator,
  type RedisRateLimitOptions,
  RedisRateLimitStore,
  type TakeResult,
} from './rate-limit.js';
export {
  type Plan,
  type StrategyOptions,
  strategyFor,
  type TenancyStrategy,
  TenantMoveRequiredError,
  TenantPlacements,
  tenantDatabaseName,
  usesDatabaseStrategy,
} from './strategy.js';
export { createTenancy, type Tenancy, type TenancyOptions } from './tenancy.js';
export { currentTenant, requireCurrentTenant, runWithTenant } from './tenant-context.js';
export {
  TENANT_DATABASE_OWNER_COLLECTION,
  TenantDatabaseOwnerError,
  TenantDatabaseOwnerRepository,
  tenantDatabaseOwnerDefinition,
} from './tenant-database-owner.js';
export { TenantDirectory, type TenantDirectoryOptions, type TenantRecord } from './tenant-directory.js';
