import {
  type CommandStartedEvent,
  currentOperation,
  type DataClient,
  type Document,
  IsolationAuditError,
  type Listener,
  type OperationContext,
  TENANT_FIELD,
  TypedEmitter,
} from '@caas-db/core';
import { unsafeDriver } from '@caas-db/core/unsafe';

/**
 * `enforce`: an operation of the data layer whose wire command lacks its tenant predicate fails with
 * `IsolationAuditError` (after the driver returns: the auditor detects, the scoper enforces).
 * `warn`: it is only reported. Either way a violation emits `isolation:violation`.
 */
export type AuditMode = 'enforce' | 'warn';

/** A command the auditor found unscoped. */
export interface IsolationViolation {
  commandName: string;
  databaseName: string;
  collection: string;
  problems: string[];
  mode: AuditMode;
}

/** Events of the auditor. */
export interface AuditorEvents {
  'isolation:violation': IsolationViolation;
}

/** Commands that read or write documents, with where their filters are. */
const DATA_COMMANDS = new Set(['find', 'aggregate', 'count', 'distinct', 'insert', 'update', 'delete', 'findAndModify']);

function tenantOf(filter: unknown): unknown {
  return typeof filter === 'object' && filter !== null ? (filter as Document)[TENANT_FIELD] : undefined;
}

/** The tenant predicate a (sub-)pipeline leads with: a `$match`, `$geoNear.query`, or a `$match` after `$search`. */
function pipelineTenant(pipeline: unknown): unknown {
  if (!Array.isArray(pipeline) || pipeline.length === 0) return undefined;
  const [first, second] = pipeline as Document[];
  if (first?.$match) return tenantOf(first.$match);
  if (first?.$geoNear) return tenantOf(first.$geoNear.query);
  if ((first?.$search || first?.$searchMeta || first?.$vectorSearch) && second?.$match) return tenantOf(second.$match);
  return undefined;
}

/** Whether a collection is tenant-owned; the auditor's checks of joins depend on it. */
type Ownership = (collection: string) => boolean;

const everyCollection: Ownership = () => true;

/**
 * Collects the tenant predicates of every level of a pipeline that reads a tenant-owned collection
 * (`leads`: the level's own input; joins by the ownership of their target); an unscoped level
 * records `undefined`. `$out`/`$merge` into a tenant-owned collection always count as unscoped.
 */
function collectPipeline(pipeline: unknown, path: string, found: Array<[string, unknown]>, leads: boolean, owned: Ownership): void {
  if (!Array.isArray(pipeline)) return;
  if (leads) found.push([path, pipelineTenant(pipeline)]);
  (pipeline as Document[]).forEach((stage, index) => {
    if (typeof stage !== 'object' || stage === null) return;
    const where = `${path}.${index}`;
    const lookup = stage.$lookup as Document | undefined;
    if (lookup) {
      const sub = lookup.pipeline ?? [];
      if (typeof lookup.from !== 'string' || owned(lookup.from)) collectPipeline(sub, `${where}.$lookup.pipeline`, found, true, owned);
      else collectPipeline(sub, `${where}.$lookup.pipeline`, found, false, owned);
    }
    const union = stage.$unionWith as Document | string | undefined;
    if (union !== undefined) {
      const coll = typeof union === 'string' ? union : union.coll;
      const sub = typeof union === 'string' ? [] : (union.pipeline ?? []);
      collectPipeline(sub, `${where}.$unionWith.pipeline`, found, typeof coll !== 'string' || owned(coll), owned);
    }
    const graph = stage.$graphLookup as Document | undefined;
    if (graph && (typeof graph.from !== 'string' || owned(graph.from)))
      found.push([`${where}.$graphLookup.restrictSearchWithMatch`, tenantOf(graph.restrictSearchWithMatch)]);
    if (stage.$facet)
      for (const [facet, sub] of Object.entries(stage.$facet as Document))
        collectPipeline(sub, `${where}.$facet.${facet}`, found, false, owned);
    const output = stage.$out ?? stage.$merge;
    if (output !== undefined) {
      const into = typeof output === 'string' ? output : ((output as Document).into ?? (output as Document).coll);
      const name = typeof into === 'string' ? into : (into as Document | undefined)?.coll;
      if (typeof name !== 'string' || owned(name)) found.push([where, undefined]);
    }
  });
}

/** The tenant an update writes (`$set`, `$setOnInsert`, a replacement), or `undefined` when it writes none. */
function tenantsWrittenBy(update: unknown): Array<[string, unknown]> {
  if (Array.isArray(update)) return [['u', undefined]]; // a pipeline update can compute tenant_id
  if (typeof update !== 'object' || update === null) return [];
  const written: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(update as Document)) {
    if (!key.startsWith('$')) {
      if (key === TENANT_FIELD) written.push([key, value]);
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    for (const [field, fieldValue] of Object.entries(value as Document)) {
      const renamesOnto = key === '$rename' && typeof fieldValue === 'string' && fieldValue.split('.')[0] === TENANT_FIELD;
      if (field.split('.')[0] !== TENANT_FIELD && !renamesOnto) continue;
      written.push([`${key}.${field}`, key === '$set' || key === '$setOnInsert' ? fieldValue : undefined]);
    }
  }
  return written;
}

/** Paths of functions inside a command (a `toBSON` would serialize something other than what was checked). */
function functionsIn(value: unknown, path: string, found: string[], depth = 0): void {
  if (depth > 100 || found.length > 0) return;
  if (typeof value === 'function') {
    found.push(`${path} is a function (it could serialize differently from what was checked)`);
    return;
  }
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || value instanceof Date) return;
  if (typeof (value as { _bsontype?: unknown })._bsontype === 'string') return;
  if (typeof (value as { toBSON?: unknown }).toBSON === 'function') {
    found.push(`${path}.toBSON is a function (it could serialize differently from what was checked)`);
    return;
  }
  for (const [key, child] of Object.entries(value)) functionsIn(child, path ? `${path}.${key}` : key, found, depth + 1);
}

/**
 * Every place of a wire command on a tenant-owned collection that must carry the tenant predicate,
 * with what it carries; updates also list the tenant each statement writes.
 */
export function tenantPredicatesOf(commandName: string, command: Document, owned: Ownership = everyCollection): Array<[string, unknown]> {
  const found: Array<[string, unknown]> = [];
  switch (commandName) {
    case 'find':
      found.push(['filter', tenantOf(command.filter)]);
      break;
    case 'count':
    case 'distinct':
      found.push(['query', tenantOf(command.query)]);
      break;
    case 'findAndModify':
      found.push(['query', tenantOf(command.query)]);
      for (const [path, tenant] of tenantsWrittenBy(command.update)) found.push([`update.${path}`, tenant]);
      break;
    case 'insert':
      (command.documents as Document[] | undefined)?.forEach((document, index) => {
        found.push([`documents.${index}`, tenantOf(document)]);
      });
      break;
    case 'update':
      (command.updates as Document[] | undefined)?.forEach((statement, index) => {
        found.push([`updates.${index}.q`, tenantOf(statement.q)]);
        for (const [path, tenant] of tenantsWrittenBy(statement.u)) found.push([`updates.${index}.u.${path}`, tenant]);
      });
      break;
    case 'delete':
      (command.deletes as Document[] | undefined)?.forEach((statement, index) => {
        found.push([`deletes.${index}.q`, tenantOf(statement.q)]);
      });
      break;
    case 'aggregate':
      collectPipeline(command.pipeline, 'pipeline', found, true, owned);
      break;
  }
  return found;
}

/** The problems of a command on a tenant-owned collection: places without a tenant, or several tenants in one command. */
export function auditCommand(commandName: string, command: Document, owned: Ownership = everyCollection): string[] {
  const predicates = tenantPredicatesOf(commandName, command, owned);
  if (predicates.length === 0) return [`${commandName} carries no filter or documents to scope`];
  const problems = predicates.filter(([, tenant]) => typeof tenant !== 'string').map(([path]) => `${path} has no tenant_id equality`);
  const tenants = new Set(predicates.map(([, tenant]) => tenant).filter((tenant) => typeof tenant === 'string'));
  if (tenants.size > 1) problems.push(`names several tenants: ${[...tenants].join(', ')}`);
  return problems;
}

/** `$indexStats` alone counts index use and returns no document (the scoper refuses it in tenant scope). */
function readsNoDocuments(commandName: string, command: Document): boolean {
  const pipeline = command.pipeline as Document[] | undefined;
  return commandName === 'aggregate' && pipeline?.length === 1 && pipeline[0]?.$indexStats !== undefined;
}

/** Options of the auditor. */
export interface IsolationAuditorOptions {
  mode: AuditMode;
  /** The names of tenant-owned collections (read at each command, so later registrations count). */
  tenantOwned: () => ReadonlySet<string>;
  /**
   * Shard keys of sharded collections (each must start with `tenant_id`): inserted documents must
   * carry every field of the key, so a sharded cluster routes each command to one shard.
   */
  shardKeys?: Readonly<Record<string, readonly string[]>>;
}

/** Fields of a shard key an inserted document lacks. */
export function missingShardKeyFields(commandName: string, command: Document, shardKey: readonly string[]): string[] {
  if (commandName !== 'insert') return [];
  const problems: string[] = [];
  (command.documents as Document[] | undefined)?.forEach((document, index) => {
    for (const field of shardKey) {
      const value = field
        .split('.')
        .reduce<unknown>(
          (current, segment) => (current && typeof current === 'object' ? (current as Document)[segment] : undefined),
          document,
        );
      if (value === undefined) problems.push(`documents.${index} lacks shard key field ${field}`);
    }
  });
  return problems;
}

/**
 * Defence in depth behind the scoper: watches every command the driver sends (its `commandStarted`
 * event) and checks that each one on a tenant-owned collection carries a `tenant_id` equality at
 * every level: filters, every update and delete statement, every inserted document, and every
 * sub-pipeline. It sees what the pipeline sent and anything sent around it through
 * `@caas-db/core/unsafe`.
 *
 * It reports; it does not block. Enforcement happens in the pipeline before the driver is called.
 * A violation emits `isolation:violation`; in `enforce` mode, when the command belongs to an
 * operation of the data layer (attributed through the operation's async context), that operation
 * then fails with `IsolationAuditError` once the driver returns, instead of returning a result.
 * Commands sent through the unsafe driver are reported only. What it cannot see: commands of
 * another `MongoClient`, and collections it does not know to be tenant-owned.
 *
 * The top-level tenant equality is also the shard-key prefix of every tenant collection, so an
 * accepted command is one a sharded cluster routes to a single shard; with `shardKeys` declared,
 * inserts must also carry every field of their collection's shard key.
 */
export class IsolationAuditor {
  readonly #client: DataClient;
  readonly #options: IsolationAuditorOptions;
  readonly #events = new TypedEmitter<AuditorEvents>();
  readonly #listener: (event: CommandStartedEvent) => void;
  /** Violations of operations still running, to fail them once the driver returns. */
  readonly #pending = new WeakMap<OperationContext, IsolationViolation>();
  #checked = 0;

  constructor(client: DataClient, options: IsolationAuditorOptions) {
    this.#client = client;
    this.#options = options;
    this.#listener = (event) => this.#inspect(event);
    unsafeDriver(client).on('commandStarted', this.#listener);
  }

  /** Commands on tenant-owned collections checked so far. */
  get checked(): number {
    return this.#checked;
  }

  #inspect(event: CommandStartedEvent): void {
    if (!DATA_COMMANDS.has(event.commandName)) return;
    const owned = this.#options.tenantOwned();
    const isOwned = (name: string) => owned.has(name);
    const target = event.command[event.commandName];
    const collection = typeof target === 'string' ? target : '(database)';
    let problems: string[];
    if (typeof target === 'string' && isOwned(target)) {
      if (readsNoDocuments(event.commandName, event.command)) return;
      this.#checked += 1;
      const shardKey = this.#options.shardKeys?.[target];
      problems = [
        ...auditCommand(event.commandName, event.command, isOwned),
        ...(shardKey ? missingShardKeyFields(event.commandName, event.command, shardKey) : []),
      ];
    } else if (event.commandName === 'aggregate') {
      // A platform collection or the database itself: only its joins into tenant collections count.
      const joins = tenantPredicatesOf('aggregate', event.command, isOwned).slice(1);
      if (joins.length === 0) return;
      this.#checked += 1;
      problems = joins.filter(([, tenant]) => typeof tenant !== 'string').map(([path]) => `${path} has no tenant_id equality`);
      const tenants = new Set(joins.map(([, tenant]) => tenant).filter((tenant) => typeof tenant === 'string'));
      if (tenants.size > 1) problems.push(`names several tenants: ${[...tenants].join(', ')}`);
    } else {
      return;
    }
    const operation = currentOperation();
    // The pipeline's scoper already refused functions in its commands: walk only what came around it.
    if (operation === undefined) functionsIn(event.command, '', problems);
    if (problems.length === 0) return;
    const violation: IsolationViolation = {
      commandName: event.commandName,
      databaseName: event.databaseName,
      collection,
      problems,
      mode: this.#options.mode,
    };
    if (operation && this.#options.mode === 'enforce') this.#pending.set(operation, violation);
    this.#events.emit('isolation:violation', violation);
  }

  /**
   * Fails `operation` with `IsolationAuditError` when one of its wire commands was found unscoped
   * in `enforce` mode (the tenancy plugin calls it from its innermost layer).
   */
  assertClean(operation: OperationContext): void {
    const violation = this.#pending.get(operation);
    if (!violation) return;
    this.#pending.delete(operation);
    throw new IsolationAuditError(violation.commandName, violation.collection, violation.problems);
  }

  /** Subscribes to violations. */
  on<Name extends keyof AuditorEvents>(event: Name, listener: Listener<AuditorEvents[Name]>): () => void {
    return this.#events.on(event, listener);
  }

  /** Stops watching. */
  detach(): void {
    unsafeDriver(this.#client).off('commandStarted', this.#listener);
  }
}
