export { CollectionAccess, lifecycleQueryShapes, withLifecycleShapes } from './access.js';
export { createArchiver, type LifecycleArchiveOptions, readArchived } from './archive.js';
export { type Clock, DAY_MS, type ManualClock, manualClock, systemClock } from './clock.js';
export {
  checkpointsDefinition,
  holdsDefinition,
  type MessageRule,
  messageRuleSchema,
  policiesDefinition,
  type RetentionPolicy,
  retentionPolicySchema,
} from './collections.js';
export type { Actor, LifecycleCollection } from './context.js';
export type { EraseOptions, EraseReport } from './erase.js';
export { type HoldReference, type HoldScope, LegalHoldError, RetentionError } from './errors.js';
export { type ExportManifest, type ExportSink, tenantCollections } from './export.js';
export type { ActiveHolds, LegalHold, PlaceHoldInput } from './holds.js';
export { createLifecycle, type Lifecycle, type LifecycleOptions } from './lifecycle.js';
export type { OrphanReport } from './orphans.js';
export { defaultPolicy, type ResolvedPolicy } from './policies.js';
export {
  type Archiver,
  type PurgeEvents,
  type PurgeOptions,
  type PurgeProgress,
  type PurgeReport,
  type PurgeRule,
  purgeRules,
  tombstoneUpdate,
} from './purge-engine.js';
export { DocumentRateLimiter } from './rate-limiter.js';
