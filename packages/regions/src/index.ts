export { type TenantConcurrencyCap, type TenantConcurrencyOptions, tenantConcurrencyCap } from './concurrency-cap.js';
export { RegionErrorCodes, ResidencyError, TenantBusyError, TenantMoveError, TenantMovingError } from './errors.js';
export { type MovePhase, type MoveRecord, movePhases, tenantMovesDefinition } from './move-store.js';
export type { MoveOptions, MoveReport } from './move-tenant.js';
export { createRegionalDataLayer, type RegionalDataLayer, type RegionalDataLayerOptions } from './regional-data-layer.js';
export type { ClusterInfo, Route } from './tenant-router.js';
