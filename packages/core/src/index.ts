export type { AnyBulkWriteOperation, CommandStartedEvent, Document, Filter, InsertManyResult, UpdateResult } from 'mongodb';
export { BSON, ObjectId } from 'mongodb';
export { type IndexUsage, indexUsageOf } from './analysis/index-usage.js';
export { type PlanSummary, summarizePlan } from './analysis/query-plan.js';
export { type SlowQuery, SlowQueryLog } from './analysis/slow-query-log.js';
export { type BatchBounds, Coalescer, type ItemOutcome } from './batching/coalescer.js';
export { type CachedRead, cacheTags, type ReadCache } from './cache/read-cache.js';
export type {
  AdminCommand,
  CollectionCommand,
  CollectionTarget,
  CommandKind,
  CommandObserver,
  DataCommand,
} from './collection/collection-command.js';
export type { CollectionPreset } from './collection/collection-preset.js';
export { type CollectionEnvironment, ScopedCollection, type UpdateCommandOptions } from './collection/scoped-collection.js';
export type { Capabilities, CapabilityName } from './connection/capabilities.js';
export {
  configDefaults,
  type DataClientConfig,
  dataClientConfigSchema,
  type ResolvedDataClientConfig,
  type RetrySettings,
  resolveDataClientConfig,
} from './connection/config.js';
export {
  type CloseOptions,
  createDataClient,
  type DataClient,
  type HealthReport,
} from './connection/data-client.js';
export { classifyFailure, type FailureKind, toCaasDbError } from './connection/driver-errors.js';
export type {
  CommandEvent,
  CommandFailedData,
  DataClientEvents,
  PoolCheckoutEvent,
  PoolSizeEvent,
  ServerSummary,
  SlowCommandEvent,
  TopologySummary,
} from './connection/monitoring.js';
export { isRetryable, type RetryableOperation, type RetryEvent, runWithRetry } from './connection/retry-policy.js';
export {
  createDataLayer,
  type DataLayer,
  type DataLayerAdmin,
  type DataLayerEvents,
  type DataLayerOptions,
  type DataLayerPlugin,
  recommendedPresets,
} from './data-layer.js';
export type { CaasDbErrorOptions, ErrorCode, ValidationIssue } from './errors.js';
export {
  CaasDbError,
  ClientClosedError,
  ConcurrencyError,
  ConfigError,
  ConnectionError,
  CursorError,
  DatabaseError,
  DuplicateKeyError,
  ErrorCodes,
  InvariantError,
  IsolationAuditError,
  isCaasDbError,
  NotFoundError,
  TenancyViolationError,
  TenantContextError,
  TenantMismatchError,
  TimeoutError,
  TransactionsUnsupportedError,
  ValidationError,
} from './errors.js';
export { type Listener, TypedEmitter } from './events/typed-emitter.js';
export {
  compareIndexes,
  type IndexDeclaration,
  type IndexDifference,
  type IndexDrift,
  indexServes,
  type QueryShape,
} from './indexes/index-declaration.js';
export { type IndexSyncReport, type SyncIndexesOptions, syncIndexes } from './indexes/index-sync.js';
export { createQueryShapeChecker, type UndeclaredQuery } from './indexes/query-shape-checker.js';
export { invariantsLayer, type ModelInvariants } from './invariants/model-invariants.js';
export { type Aggregation, AggregationRepository, aggregationSchema, aggregationsDefinition } from './model/aggregations.js';
export {
  type ApiKey,
  type ApiKeyRejection,
  ApiKeyRepository,
  type ApiKeyVerification,
  apiKeySchema,
  apiKeysDefinition,
} from './model/api-keys.js';
export { type Application, ApplicationRepository, applicationSchema, applicationsDefinition } from './model/applications.js';
export { type AuditLog, AuditLogRepository, type AuditPurgeOptions, auditLogSchema, auditLogsDefinition } from './model/audit-logs.js';
export {
  type BillingRecord,
  BillingRepository,
  billingDefinition,
  billingMetrics,
  billingPeriodOf,
  billingSchema,
} from './model/billing.js';
export { type Client, ClientRepository, clientSchema, clientStatuses, clientsDefinition, plans } from './model/clients.js';
export {
  type Conversation,
  ConversationRepository,
  conversationSchema,
  conversationsDefinition,
  conversationTypes,
  participantRoles,
} from './model/conversations.js';
export { type AnalyticsEvent, EventRepository, eventSchema, eventsDefinition } from './model/events.js';
export { type FileRecord, FileRepository, fileSchema, filesDefinition, sharingTypes, storageProviders } from './model/files.js';
export { type Group, GroupRepository, groupSchema, groupsDefinition } from './model/groups.js';
export {
  type MessageReferenceOptions,
  type ReferenceProblem,
  ReferentialIntegrityError,
} from './model/message-references.js';
export {
  type CreateMessageInput,
  contentTypes,
  type Message,
  MessageRepository,
  type MessageRepositoryContract,
  messageSchema,
  messageStatuses,
  messagesDefinition,
  type PaginationOptions,
} from './model/messages.js';
export { type Metric, MetricRepository, metricSchema, metricsDefinition, metricsTimeSeries } from './model/metrics.js';
export {
  createModelRepositories,
  type ModelOptions,
  type ModelRepositories,
  type RepositoryBuilder,
  type RepositoryName,
  repositoryCollections,
  type Syncable,
  type TenantOwnedRepositoryName,
  type TenantRepositories,
} from './model/model-repositories.js';
export {
  type ConversationReadMark,
  DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO,
  DEFAULT_UNREAD_COUNT_MAX,
  type ReadPosition,
  type ReceiptPolicy,
  type ReceiptPolicyOptions,
} from './model/read-positions.js';
export { type Settings, SettingsRepository, settingsDefinition, settingsSchema } from './model/settings.js';
export type { TenantAccount } from './model/tenant-account.js';
export {
  relationshipTypes,
  type User,
  UserRepository,
  type UserRepositoryOptions,
  userSchema,
  userStatuses,
  usersDefinition,
} from './model/users.js';
export {
  type DocumentUpgrades,
  type UpgradeBatch,
  type UpgradeBatchOptions,
  upgradeDocument,
  type VersionedModel,
} from './model/versioning.js';
export { KeysetCursorCodec, keysetFilter, type Page, type PageOptions, type PageSort, sortDocument } from './pagination/keyset-cursor.js';
export { type StreamOptions, streamPages } from './pagination/stream-pages.js';
export { CommandPipeline, currentOperation, type OperationTrace, operationChannel, type Terminal } from './pipeline/command-pipeline.js';
export { targetOf } from './pipeline/core-layers.js';
export {
  aspectsOf,
  type CollectionInfo,
  type Middleware,
  type MiddlewarePhase,
  middlewarePhases,
  type Next,
  type OperationAspects,
  type OperationContext,
  type OperationDeclaration,
} from './pipeline/operation.js';
export { Repository, type RepositoryContext, type RepositoryDefinition } from './repository/repository.js';
export type {
  BulkItemResult,
  BulkOperation,
  BulkWriteSummary,
  CreateInput,
  DocumentFilter,
  ListOptions,
  Patch,
  Projected,
  Projection,
  ReadOptions,
  SoftDeleteFields,
  StoredDocument,
  SystemFields,
  VersionFields,
  WriteOptions,
} from './repository/repository-types.js';
export { canonicalKey } from './schema/canonical-key.js';
export { assertSafeDocument, assertSafeFilter } from './schema/input-guard.js';
export {
  dateSchema,
  externalIdSchema,
  type FreeForm,
  freeFormSchema,
  type IdInput,
  isSafeKey,
  objectIdSchema,
  safeKeySchema,
  tenantIdSchema,
  text,
} from './schema/primitives.js';
export { patchToSetPaths, schemaAtPath, type UpdateValidationOptions, validateUpdate } from './schema/update-validator.js';
export { type CommandScope, scopeCommand, scopeUpdate, stampDocument } from './scoping/scope-command.js';
export { assertNoServerSideJavaScript, type PipelineScope, scopePipeline, withTenant } from './scoping/scope-pipeline.js';
export { TENANT_FIELD } from './scoping/tenant-field.js';
export {
  type AppliedShardingCommand,
  applySharding,
  type CollectionShardingPlan,
  isSharded,
  type PlanShardingOptions,
  planSharding,
  planZones,
  recommendedShardKeys,
  type ScatterGatherQuery,
  type ShapeTargeting,
  type ShardableDefinition,
  type ShardingCommand,
  ShardingConflictError,
  type ShardingPlan,
  ShardingUnavailableError,
  type ShardKeyDeclaration,
  scatterGatherOf,
  shapeTargeting,
  type Targeting,
  targetingOf,
  type UnshardedDeclaration,
  type ZoneLayout,
} from './sharding/index.js';
export { type TimeBudgetOptions, timeBudget, timeBudgetDefaults } from './timeouts/time-budget.js';
export {
  afterCommit,
  currentSession,
  runInTransaction,
  type TransactionMode,
  type TransactionOptions,
} from './transactions/transaction-context.js';
export { parseConfig, parseInput, toValidationIssues } from './validation-issues.js';
