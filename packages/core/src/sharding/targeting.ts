import type { QueryShape } from '../indexes/index-declaration.js';
import { isSharded, type ShardKeyDeclaration, type UnshardedDeclaration } from './shard-keys.js';

/**
 * How a sharded cluster routes a query: to the one chunk range of its full shard key
 * (`single-shard`), to the chunks of a shard-key prefix such as one tenant's range (`targeted`), or
 * to every shard (`scatter-gather`).
 */
export type Targeting = 'single-shard' | 'targeted' | 'scatter-gather';

/**
 * The routing of a query whose filter constrains `equality` fields by equality (`$eq`, `$in`): a
 * query is targeted when it fixes the first field of the key, single-shard when it fixes all.
 */
export function targetingOf(key: Readonly<Record<string, unknown>>, equality: Iterable<string>): Targeting {
  const fixed = new Set(equality);
  const fields = Object.keys(key);
  if (!fixed.has(fields[0] ?? '')) return 'scatter-gather';
  return fields.every((field) => fixed.has(field)) ? 'single-shard' : 'targeted';
}

/** The routing of one declared query shape on a sharded collection. */
export interface ShapeTargeting {
  collection: string;
  shape: string;
  targeting: Targeting;
  /** Why a scatter-gather shape is acceptable, when the shard key declaration allows it. */
  allowed: string | undefined;
}

/**
 * The routing of every declared query shape of the sharded collections. Shapes of tenant-owned
 * collections count `tenant_id` as fixed: the tenant scoper adds it to every such command.
 */
export function shapeTargeting(
  definitions: ReadonlyArray<{ collection: string; tenantOwned: boolean; queries: readonly QueryShape[] }>,
  shardKeys: Readonly<Record<string, ShardKeyDeclaration | UnshardedDeclaration>>,
): ShapeTargeting[] {
  const found: ShapeTargeting[] = [];
  for (const definition of definitions) {
    const declaration = shardKeys[definition.collection];
    if (!isSharded(declaration)) continue;
    for (const shape of definition.queries) {
      const equality = definition.tenantOwned ? [...shape.equality, 'tenant_id'] : shape.equality;
      const targeting = targetingOf(declaration.key, equality);
      found.push({
        collection: definition.collection,
        shape: shape.name,
        targeting,
        allowed: targeting === 'scatter-gather' ? declaration.allowScatter?.[shape.name] : undefined,
      });
    }
  }
  return found;
}

/** A command a sharded cluster would send to every shard, seen at runtime. */
export interface ScatterGatherQuery {
  collection: string;
  operation: string;
  /** The fields the command fixed by equality (the shard key's first field is not among them). */
  equality: string[];
}

/**
 * The runtime check of the query-shape checker: the scatter-gather query `command` is on a sharded
 * collection, unless its operation's shape is allowed to scatter (by the method name after the
 * collection, e.g. `listByAction` of `audit_logs.listByAction`).
 */
export function scatterGatherOf(
  shardKeys: Readonly<Record<string, ShardKeyDeclaration | UnshardedDeclaration>>,
  target: { name: string; operation: string },
  equality: ReadonlySet<string>,
): ScatterGatherQuery | undefined {
  const declaration = shardKeys[target.name];
  if (!isSharded(declaration) || targetingOf(declaration.key, equality) !== 'scatter-gather') return undefined;
  const method = target.operation.slice(target.operation.indexOf('.') + 1);
  if (declaration.allowScatter?.[method] !== undefined) return undefined;
  return { collection: target.name, operation: target.operation, equality: [...equality].sort() };
}
