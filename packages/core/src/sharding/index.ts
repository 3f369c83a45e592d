export { type AppliedShardingCommand, applySharding, ShardingConflictError, ShardingUnavailableError } from './apply-sharding.js';
export {
  type CollectionShardingPlan,
  type PlanShardingOptions,
  planSharding,
  planZones,
  type ShardableDefinition,
  type ShardingCommand,
  type ShardingPlan,
  type ZoneLayout,
} from './plan-sharding.js';
export { isSharded, recommendedShardKeys, type ShardKeyDeclaration, type UnshardedDeclaration } from './shard-keys.js';
export { type ScatterGatherQuery, type ShapeTargeting, scatterGatherOf, shapeTargeting, type Targeting, targetingOf } from './targeting.js';
