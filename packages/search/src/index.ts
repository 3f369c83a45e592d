/**
 * @caas-db/search: tenant-scoped search over messages (blind indexes), users and conversations,
 * and the platform's analytics. See docs/search.md and docs/analytics.md.
 */

export {
  type Analytics,
  type AnalyticsOptions,
  createAnalytics,
  type RollupDrift,
  type RollupRow,
  rollupKinds,
  type TrackedEvent,
} from './analytics.js';
export { type BlindIndex, type BlindIndexOptions, createBlindIndex } from './blind-index.js';
export { normalizeText, wordsOf } from './normalize.js';
export { PipelineRepository, type ReadPreferenceMode } from './pipeline-repository.js';
export {
  type BlindQuery,
  createSearch,
  type MessageSearchFilters,
  type SearchApi,
  type SearchEngine,
  type SearchOptions,
  type SearchPage,
  type SearchPlugin,
} from './search.js';
export { indexTokens, queryTokens, type TokenOptions, type TokenQuery } from './token-index.js';
