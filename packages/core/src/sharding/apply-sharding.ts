import type { DataLayerAdmin } from '../data-layer.js';
import { CaasDbError, ValidationError } from '../errors.js';
import type { ShardingPlan } from './plan-sharding.js';

/** The deployment is not a sharded cluster (the data client is not connected to a `mongos`). Nothing was changed. */
export class ShardingUnavailableError extends CaasDbError {
  readonly code = 'E_SHARDING_UNAVAILABLE';
}

/** A collection is already sharded on another key: resharding is a decision `applySharding` does not take. */
export class ShardingConflictError extends CaasDbError {
  readonly code = 'E_SHARDING_CONFLICT';
  readonly collection: string;

  constructor(collection: string, message: string) {
    super(message);
    this.collection = collection;
  }
}

/** What `applySharding` did with one command of the plan. */
export interface AppliedShardingCommand {
  /** The command name, e.g. `shardCollection`. */
  readonly command: string;
  /** What it addresses (a namespace, a shard, a database). */
  readonly target: string;
  /** `matched`: the cluster already was as planned (nothing changed); `applied`: the command ran. */
  readonly outcome: 'applied' | 'matched';
}

/**
 * Runs a {@link ShardingPlan} through the data layer's pipeline (`admin.runCommand`), in order and
 * idempotently: a collection already sharded on the planned key and indexes that exist are
 * reported `matched` and left alone; zone commands are idempotent on the server.
 * @throws {ValidationError} when the plan has problems (see `collections[].problems`); nothing is sent.
 * @throws {ShardingUnavailableError} when the client is not connected to a mongos; only `isMaster` was sent.
 * @throws {ShardingConflictError} when a collection is sharded on another key.
 */
export async function applySharding(data: { readonly admin: DataLayerAdmin }, plan: ShardingPlan): Promise<AppliedShardingCommand[]> {
  const problems = plan.collections.flatMap((collection) =>
    collection.problems.map((message) => ({ path: collection.collection, message, code: 'custom' })),
  );
  if (problems.length > 0) throw new ValidationError('sharding plan', problems);
  const hello = await data.admin.runCommand('admin', { isMaster: 1 }, { name: 'sharding (topology)', idempotent: true });
  if (hello.msg !== 'isdbgrid')
    throw new ShardingUnavailableError('applySharding needs a sharded cluster: the client is not connected to a mongos');
  const applied: AppliedShardingCommand[] = [];
  for (const { database, command } of plan.commands) {
    const name = Object.keys(command)[0] as string;
    const target = String(command[name]);
    const options = { name: `sharding (${name})`, idempotent: true };
    if (name === 'shardCollection') {
      const found = (await data.admin.runCommand('config', { find: 'collections', filter: { _id: target }, limit: 1 }, options)) as {
        cursor?: { firstBatch?: Array<{ key?: unknown; dropped?: boolean }> };
      };
      const existing = found.cursor?.firstBatch?.[0];
      if (existing && existing.dropped !== true) {
        if (JSON.stringify(existing.key) !== JSON.stringify(command.key))
          throw new ShardingConflictError(
            target,
            `${target} is sharded on ${JSON.stringify(existing.key)}, the plan says ${JSON.stringify(command.key)}`,
          );
        applied.push({ command: name, target, outcome: 'matched' });
        continue;
      }
    }
    const result = await data.admin.runCommand(database, command, options);
    const unchanged = name === 'createIndexes' && (result.numIndexesBefore === result.numIndexesAfter || result.note !== undefined);
    applied.push({ command: name, target, outcome: unchanged ? 'matched' : 'applied' });
  }
  return applied;
}
