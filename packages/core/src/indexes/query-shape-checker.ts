import type { Document } from 'mongodb';
import type { CollectionCommand, CommandObserver } from '../collection/collection-command.js';
import { ConnectionError, DatabaseError, DuplicateKeyError, isCaasDbError, TimeoutError } from '../errors.js';
import type { ShardKeyDeclaration, UnshardedDeclaration } from '../sharding/shard-keys.js';
import { type ScatterGatherQuery, scatterGatherOf } from '../sharding/targeting.js';
import type { QueryShape } from './index-declaration.js';

/** A command whose filter matched none of its collection's declared query shapes. */
export interface UndeclaredQuery {
  collection: string;
  operation: string;
  equality: string[];
  sort: Array<[string, number]>;
}

const EQUALITY_OPERATORS = new Set(['$eq', '$in', '$all']);

function isEquality(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !(Object.getPrototypeOf(value) === Object.prototype))
    return true;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => EQUALITY_OPERATORS.has(key));
}

/** The fields a filter constrains by equality, and those it constrains otherwise. */
function fieldsOf(filter: Document): { equality: Set<string>; other: Set<string> } {
  const equality = new Set<string>();
  const other = new Set<string>();
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' && Array.isArray(value) && value[0]) {
      // Keyset pages wrap the query as { $and: [query, position] }: the query is the first branch.
      const inner = fieldsOf(value[0] as Document);
      for (const field of inner.equality) equality.add(field);
      for (const field of inner.other) other.add(field);
    } else if (key.startsWith('$')) {
    } else if (isEquality(value)) {
      equality.add(key);
    } else {
      other.add(key);
    }
  }
  return { equality, other };
}

function filterOf(command: CollectionCommand): Document | undefined {
  // listCollections filters collection names, not documents.
  return 'filter' in command && command.kind !== 'listCollections' ? command.filter : undefined;
}

function sortOf(command: CollectionCommand): Array<[string, number]> {
  if (command.kind !== 'find' || !command.options.sort) return [];
  return Object.entries(command.options.sort as Record<string, number>);
}

function matches(shape: QueryShape, equality: Set<string>, sort: Array<[string, number]>): boolean {
  const allowed = new Set([...shape.equality, ...(shape.range ?? []), ...(shape.residual ?? []), 'deleted_at']);
  if (!shape.equality.every((field) => equality.has(field))) return false;
  if (![...equality].every((field) => allowed.has(field))) return false;
  if (sort.length === 0 || !shape.sort) return true;
  const declared = shape.sort;
  const same = (flip: number) =>
    sort.length === declared.length &&
    sort.every(([field, direction], index) => declared[index]?.[0] === field && declared[index]?.[1] === direction * flip);
  return same(1) || same(-1);
}

function wasRefused(error: unknown): boolean {
  return (
    isCaasDbError(error) &&
    !(
      error instanceof DatabaseError ||
      error instanceof ConnectionError ||
      error instanceof TimeoutError ||
      error instanceof DuplicateKeyError
    )
  );
}

/**
 * A command observer that checks every query against the declared query shapes of its collection
 * (and so, through `indexServes`, against the declared indexes). Queries by `_id` are always served.
 * Tests attach it to a data layer and fail on any {@link UndeclaredQuery}. With `shardKeys`, it
 * also records every query a sharded cluster would scatter to all shards (`scatterGather()`),
 * except those of shapes the shard key declaration allows to.
 */
export function createQueryShapeChecker(
  shapes: ReadonlyMap<string, readonly QueryShape[]>,
  options: { shardKeys?: Readonly<Record<string, ShardKeyDeclaration | UnshardedDeclaration>> } = {},
): CommandObserver & { undeclared(): UndeclaredQuery[]; scatterGather(): ScatterGatherQuery[] } {
  const found: UndeclaredQuery[] = [];
  const scattered: ScatterGatherQuery[] = [];
  return {
    observe({ command, target, error }) {
      // A command a layer refused was never sent: no index serves or fails to serve it.
      if (error !== undefined && wasRefused(error)) return;
      const declared = shapes.get(target.name);
      const filter = filterOf(command);
      if (!declared || !filter) return;
      const { equality } = fieldsOf(filter);
      const scatter = options.shardKeys && scatterGatherOf(options.shardKeys, target, equality);
      if (scatter) scattered.push(scatter);
      if (equality.has('_id')) return;
      const sort = sortOf(command);
      if (declared.some((shape) => matches(shape, equality, sort))) return;
      found.push({ collection: target.name, operation: target.operation, equality: [...equality].sort(), sort });
    },
    undeclared: () => [...found],
    scatterGather: () => [...scattered],
  };
}
