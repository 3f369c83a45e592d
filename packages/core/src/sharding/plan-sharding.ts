import { type Document, MinKey } from 'mongodb';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { IndexDeclaration } from '../indexes/index-declaration.js';
import { tenantIdSchema } from '../schema/primitives.js';
import { parseConfig } from '../validation-issues.js';
import { isSharded, recommendedShardKeys, type ShardKeyDeclaration, type UnshardedDeclaration } from './shard-keys.js';

/** One admin command of a plan, with the database it runs on and why. */
export interface ShardingCommand {
  /** `admin` for cluster commands, the data database for `createIndexes`, `config` never. */
  readonly database: string;
  readonly command: Document;
  readonly purpose: string;
}

/** What the plan decided for one collection. */
export interface CollectionShardingPlan {
  readonly collection: string;
  readonly sharded: boolean;
  readonly key: Readonly<Record<string, 1 | 'hashed'>> | undefined;
  /** `ranged` or `hashed` (a compound key with one hashed field). */
  readonly strategy: 'ranged' | 'hashed' | 'unsharded';
  readonly reason: string;
  /** The declared index that supports the shard key (time-series collections: the server's own). */
  readonly supportingIndex: string | undefined;
  /** What stops the key from being used as declared (a missing supporting index, a unique index it does not prefix). */
  readonly problems: readonly string[];
}

/** The output of {@link planSharding}. */
export interface ShardingPlan {
  readonly database: string;
  readonly collections: readonly CollectionShardingPlan[];
  /** Every command, in the order they must run. */
  readonly commands: readonly ShardingCommand[];
}

/** The model facts the plan reads from each repository definition. */
export interface ShardableDefinition {
  readonly collection: string;
  readonly indexes: readonly IndexDeclaration[];
}

/** Zones for a sharded cluster with region-pinned shards (see {@link planZones}). */
export interface ZoneLayout {
  /** Shard names per zone, e.g. `{ 'eu-west-1': ['shard-eu-a', 'shard-eu-b'] }`. */
  zones: Record<string, string[]>;
  /** Each tenant's region (`clients.region`). */
  tenants: Record<string, string>;
  /** The zone of each region; a region is its own zone by default. */
  regionZones?: Record<string, string>;
}

/** Options of {@link planSharding}. */
export interface PlanShardingOptions {
  /** The database of the collections. */
  database: string;
  /** The repository definitions (the data model's, or yours). */
  definitions: readonly ShardableDefinition[];
  /** The shard keys; {@link recommendedShardKeys} by default. Collections with no entry stay unsharded. */
  shardKeys?: Readonly<Record<string, ShardKeyDeclaration | UnshardedDeclaration>>;
  /** Zones to define before sharding, so hashed collections are pre-split into the zones' shards. */
  zones?: ZoneLayout;
}

const databaseName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[^/\\. "$*<>:|?\0]+$/);
const shardName = z.string().min(1).max(256);
const zoneLayoutSchema = z.strictObject({
  zones: z.record(z.string().min(1).max(256), z.array(shardName).min(1)),
  tenants: z.record(tenantIdSchema, z.string().regex(/^[a-z]{2}-[a-z]+-\d$/)),
  regionZones: z.record(z.string(), z.string().min(1)).optional(),
});

/** True when `index` starts with exactly the fields and directions of `key`. */
function supports(index: IndexDeclaration, key: Readonly<Record<string, unknown>>): boolean {
  const indexKeys = Object.entries(index.key);
  return Object.entries(key).every(([field, value], position) => indexKeys[position]?.[0] === field && indexKeys[position]?.[1] === value);
}

/** True when the unique index's fields start with the shard key's fields (MongoDB's rule for unique indexes). */
function prefixedBy(index: IndexDeclaration, key: Readonly<Record<string, unknown>>): boolean {
  const indexFields = Object.keys(index.key);
  return Object.keys(key).every((field, position) => indexFields[position] === field);
}

function planCollection(
  definition: ShardableDefinition,
  declaration: ShardKeyDeclaration | UnshardedDeclaration | undefined,
): CollectionShardingPlan {
  if (!isSharded(declaration)) {
    return {
      collection: definition.collection,
      sharded: false,
      key: undefined,
      strategy: 'unsharded',
      reason: declaration?.reason ?? 'no shard key declared',
      supportingIndex: undefined,
      problems: [],
    };
  }
  const problems: string[] = [];
  const supporting = declaration.timeseries ? undefined : definition.indexes.find((index) => supports(index, declaration.key));
  if (!declaration.timeseries && !supporting)
    problems.push(`no declared index starts with the shard key ${JSON.stringify(declaration.key)}: declare one in the model`);
  for (const index of definition.indexes) {
    if (index.unique && !prefixedBy(index, declaration.key))
      problems.push(`unique index ${index.name} does not start with the shard key: MongoDB cannot enforce it across shards`);
  }
  return {
    collection: definition.collection,
    sharded: true,
    key: declaration.key,
    strategy: Object.values(declaration.key).includes('hashed') ? 'hashed' : 'ranged',
    reason: declaration.reason,
    supportingIndex: declaration.timeseries ? '(time-series buckets)' : supporting?.name,
    problems,
  };
}

/**
 * The zone commands for a sharded cluster whose shards are pinned to regions: each shard joins its
 * zone, and every sharded collection gets one zone range per run of consecutive tenants (in
 * `tenant_id` order) of the same region, so a tenant's documents live only on its region's shards.
 * A range runs from `{ tenant_id: first, ...MinKey }` to `{ tenant_id: last + '\0', ...MinKey }`
 * (the smallest key after the last tenant's): a tenant id created later that sorts inside a run
 * lands in that run's zone until the next plan.
 * @throws {ConfigError} when the layout is invalid or names a region no zone holds.
 */
export function planZones(options: {
  database: string;
  collections: ReadonlyArray<{ collection: string; key: Readonly<Record<string, unknown>> }>;
  layout: ZoneLayout;
}): ShardingCommand[] {
  const database = parseConfig(databaseName, options.database);
  const layout = parseConfig(zoneLayoutSchema, options.layout);
  const zoneOf = (region: string) => layout.regionZones?.[region] ?? region;
  const problems = Object.entries(layout.tenants)
    .filter(([, region]) => !(zoneOf(region) in layout.zones))
    .map(([tenant, region]) => ({ path: `tenants.${tenant}`, message: `region ${region} maps to no zone`, code: 'custom' }));
  if (problems.length > 0) throw new ConfigError(problems);
  const commands: ShardingCommand[] = [];
  for (const [zone, shards] of Object.entries(layout.zones).sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const shard of shards)
      commands.push({ database: 'admin', command: { addShardToZone: shard, zone }, purpose: `shard ${shard} holds ${zone}` });
  }
  const tenants = Object.keys(layout.tenants).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const runs: Array<{ first: string; last: string; zone: string }> = [];
  for (const tenant of tenants) {
    const zone = zoneOf(layout.tenants[tenant] as string);
    const run = runs[runs.length - 1];
    if (run && run.zone === zone) run.last = tenant;
    else runs.push({ first: tenant, last: tenant, zone });
  }
  for (const { collection, key } of options.collections) {
    const rest = Object.keys(key).filter((field) => field !== 'tenant_id');
    const bound = (tenant: string) => ({ tenant_id: tenant, ...Object.fromEntries(rest.map((field) => [field, new MinKey()])) });
    for (const run of runs) {
      commands.push({
        database: 'admin',
        command: {
          updateZoneKeyRange: `${database}.${collection}`,
          min: bound(run.first),
          max: bound(`${run.last}\u0000`),
          zone: run.zone,
        },
        purpose: `${collection}: tenants ${run.first}${run.first === run.last ? '' : ` to ${run.last}`} live in ${run.zone}`,
      });
    }
  }
  return commands;
}

/**
 * The admin commands that shard the collections of `definitions` on their declared keys, in order:
 * `enableSharding`, the supporting index of each key (`createIndexes`, a no-op when it exists), the
 * zones when given, then `shardCollection` (hashed keys pre-split into the zones' shards). Pure: it
 * sends nothing; `applySharding` runs the plan.
 * @throws {ConfigError} when the options are invalid.
 */
export function planSharding(options: PlanShardingOptions): ShardingPlan {
  const database = parseConfig(databaseName, options.database);
  const shardKeys = options.shardKeys ?? recommendedShardKeys;
  const collections = options.definitions.map((definition) => planCollection(definition, shardKeys[definition.collection]));
  const sharded = collections.filter((plan) => plan.sharded);
  const commands: ShardingCommand[] = [
    { database: 'admin', command: { enableSharding: database }, purpose: `shard collections of ${database}` },
  ];
  for (const plan of sharded) {
    const definition = options.definitions.find((candidate) => candidate.collection === plan.collection);
    const index = definition?.indexes.find((candidate) => candidate.name === plan.supportingIndex);
    if (!index) continue;
    commands.push({
      database,
      command: {
        createIndexes: plan.collection,
        indexes: [{ key: index.key, name: index.name, ...(index.unique && { unique: true }) }],
      },
      purpose: `${plan.collection}: the index that supports its shard key`,
    });
  }
  if (options.zones) {
    commands.push(
      ...planZones({
        database,
        collections: sharded.map((plan) => ({ collection: plan.collection, key: plan.key ?? {} })),
        layout: options.zones,
      }),
    );
  }
  for (const plan of sharded) {
    const declaration = shardKeys[plan.collection] as ShardKeyDeclaration;
    commands.push({
      database: 'admin',
      command: {
        shardCollection: `${database}.${plan.collection}`,
        key: plan.key,
        ...(declaration.timeseries && { timeseries: declaration.timeseries }),
        ...(plan.strategy === 'hashed' && options.zones && { presplitHashedZones: true }),
      },
      purpose: `${plan.collection}: ${plan.strategy} on ${Object.keys(plan.key ?? {}).join(', ')}`,
    });
  }
  return { database, collections, commands };
}
