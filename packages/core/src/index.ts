export { ObjectId } from 'mongodb';
export { type Capabilities, type CapabilityName, detectCapabilities } from './connection/capabilities.js';
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
  type ExecuteOptions,
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
  isCaasDbError,
  NotFoundError,
  TimeoutError,
  TransactionsUnsupportedError,
  ValidationError,
} from './errors.js';
export { type Listener, TypedEmitter } from './events/typed-emitter.js';
