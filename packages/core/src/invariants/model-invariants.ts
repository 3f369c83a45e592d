import type { AnyBulkWriteOperation, Document } from 'mongodb';
import type { CollectionCommand } from '../collection/collection-command.js';
import { InvariantError } from '../errors.js';
import { isSchemaUpgradeGrant } from '../model/versioning.js';
import type { Middleware, OperationContext } from '../pipeline/operation.js';
import { isRelocation } from '../sharding/relocation-grant.js';

/**
 * What no command may do to a collection's documents, declared on its model and enforced by the
 * pipeline's `invariants` layer for every command, whichever repository class or generic method
 * sends it. Domain methods that legitimately write a guarded field carry the model's grant, a
 * module-private symbol no other code can name.
 */
export interface ModelInvariants {
  /** Documents are never updated or deleted once written (audit trails). */
  readonly appendOnly?: boolean;
  /**
   * Fields (dotted paths) only granted operations may write, in updates and in inserts; an insert
   * may still carry the value in `initialValues` (the schema default).
   */
  readonly guardedFields?: readonly string[];
  /**
   * Fields a document keeps for life once inserted (a message's conversation): only the model's
   * granted operations may rewrite them.
   */
  readonly immutableFields?: readonly string[];
  /** The value a guarded field may have in a document any operation inserts (`read_by: []`). */
  readonly initialValues?: Readonly<Record<string, unknown>>;
  /** State fields whose value only moves forward through the listed order (granted operations excepted). */
  readonly forwardOnly?: Readonly<Record<string, readonly string[]>>;
  /** Whether `grant` is this model's grant (the symbol itself stays private to the model's module). */
  readonly isGranted?: (grant: symbol | undefined) => boolean;
  /**
   * Whether `grant` is the model's expiry grant: an append-only model's own retention purge, the
   * one command that may delete its entries (a `deleteMany`, nothing else).
   */
  readonly mayExpire?: (grant: symbol | undefined) => boolean;
}

/** Fields no command may ever write after insert, on any collection. */
const IMMUTABLE = ['_id', 'created_at', 'schema_version'];
/** A model's own upgrades (core's schema-upgrade grant) move `schema_version` forward. */
const IMMUTABLE_BY_UPGRADES = ['_id', 'created_at'];

/**
 * The field paths an update document writes (operator updates, replacements, pipeline updates);
 * `insertOnly` leaves out `$setOnInsert`, which writes only into a document an upsert creates.
 */
function writtenPaths(update: Document | Document[], insertOnly: boolean): string[] | 'everything' {
  if (Array.isArray(update)) return 'everything';
  const paths: string[] = [];
  for (const [key, value] of Object.entries(update)) {
    if (!key.startsWith('$')) {
      paths.push(key);
      continue;
    }
    if ((key === '$setOnInsert' && insertOnly) || typeof value !== 'object' || value === null) continue;
    for (const [field, target] of Object.entries(value as Document)) {
      paths.push(field);
      if (key === '$rename' && typeof target === 'string') paths.push(target);
    }
  }
  return paths;
}

/** Whether writing `path` writes `field` (the field itself, one of its parents, or one of its children). */
function touches(path: string, field: string): boolean {
  const bare = path.replace(/\.\$(\[[^\]]*\])?/g, '');
  return bare === field || bare.startsWith(`${field}.`) || field.startsWith(`${bare}.`);
}

// Paths split once: the guarded fields of a model are few and checked on every inserted document.
const splitPaths = new Map<string, readonly string[]>();

/** The value of a dotted path in a document, when present. */
function valueAt(document: Document, path: string): unknown {
  let segments = splitPaths.get(path);
  if (segments === undefined) {
    segments = path.split('.');
    splitPaths.set(path, segments);
  }
  let current: unknown = document;
  for (const segment of segments) {
    if (!current || typeof current !== 'object') return undefined;
    current = (current as Document)[segment];
  }
  return current;
}

function isInitial(value: unknown, initial: unknown): boolean {
  if (initial === undefined) return false;
  // The common initial values (0, '', an empty array) without serializing.
  if (value === initial) return true;
  if (typeof value !== 'object' || value === null || typeof initial !== 'object' || initial === null) return false;
  if (Array.isArray(value) && Array.isArray(initial) && value.length === 0) return initial.length === 0;
  return JSON.stringify(value) === JSON.stringify(initial);
}

/** Refuses a write to an existing document that touches any of `fields`. */
function refuseChangesAfterInsert(fields: readonly string[], paths: readonly string[], where: string): void {
  for (const field of fields) {
    const path = paths.find((candidate) => touches(candidate, field));
    if (path !== undefined) throw new InvariantError(`${where}.${path}`, `${field} never changes after insert`);
  }
}

interface Write {
  kind: 'insert' | 'update' | 'replace' | 'delete';
  filter?: Document;
  update?: Document | Document[];
  document?: Document;
}

function writesOf(command: CollectionCommand): Write[] {
  switch (command.kind) {
    case 'insertOne':
      return [{ kind: 'insert', document: command.document }];
    case 'insertMany':
      return command.documents.map((document) => ({ kind: 'insert', document }));
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      return [{ kind: 'update', filter: command.filter, update: command.update }];
    case 'deleteOne':
    case 'deleteMany':
      return [{ kind: 'delete' }];
    case 'bulkWrite':
      return command.operations.map(bulkWriteOf);
    default:
      return [];
  }
}

function bulkWriteOf(operation: AnyBulkWriteOperation<Document>): Write {
  if ('insertOne' in operation) return { kind: 'insert', document: operation.insertOne.document };
  if ('updateOne' in operation)
    return { kind: 'update', filter: operation.updateOne.filter, update: operation.updateOne.update as Document };
  if ('updateMany' in operation)
    return { kind: 'update', filter: operation.updateMany.filter, update: operation.updateMany.update as Document };
  if ('replaceOne' in operation) return { kind: 'replace', document: operation.replaceOne.replacement };
  return { kind: 'delete' };
}

/** Checks one write against a model's invariants; returns the forward-only filters to add, or throws. */
function check(
  write: Write,
  invariants: ModelInvariants | undefined,
  granted: boolean,
  where: string,
  upgrading = false,
): Document | undefined {
  if (write.kind !== 'insert') {
    if (invariants?.appendOnly) throw new InvariantError(where, `${write.kind} is refused: the collection is append-only`);
    if (write.kind === 'replace') throw new InvariantError(where, 'replacements are refused: update fields with operators');
  }
  if (write.kind === 'delete') return undefined;
  if (write.kind === 'insert') {
    if (granted) return undefined;
    for (const field of invariants?.guardedFields ?? []) {
      const value = valueAt(write.document ?? {}, field);
      if (value === undefined || isInitial(value, invariants?.initialValues?.[field])) continue;
      throw new InvariantError(`${where}.${field}`, `${field} is written only by the model's own methods`);
    }
    return undefined;
  }
  const paths = writtenPaths(write.update ?? {}, false);
  const afterInsert = writtenPaths(write.update ?? {}, true);
  if (paths === 'everything' || afterInsert === 'everything')
    throw new InvariantError(where, 'pipeline updates are refused: their writes cannot be checked');
  refuseChangesAfterInsert(upgrading ? IMMUTABLE_BY_UPGRADES : IMMUTABLE, afterInsert, where);
  if (granted || !invariants) return undefined;
  refuseChangesAfterInsert(invariants.immutableFields ?? [], afterInsert, where);
  for (const field of invariants.guardedFields ?? []) {
    const path = paths.find((candidate) => touches(candidate, field));
    if (path !== undefined) throw new InvariantError(`${where}.${path}`, `${field} is written only by the model's own methods`);
  }
  const constraints: Document = {};
  for (const [field, order] of Object.entries(invariants.forwardOnly ?? {})) {
    const path = paths.find((candidate) => touches(candidate, field));
    if (path === undefined) continue;
    const to = (write.update as Document).$set?.[field];
    const index = typeof to === 'string' ? order.indexOf(to) : -1;
    if (path !== field || index < 0)
      throw new InvariantError(`${where}.${path}`, `${field} moves only forward through ${order.join(' → ')}`);
    // Only from an earlier state: applied by the server atomically with the write itself.
    constraints[field] = { $in: order.slice(0, index) };
  }
  return Object.keys(constraints).length > 0 ? constraints : undefined;
}

function withConstraints(command: CollectionCommand, constraints: Array<Document | undefined>): CollectionCommand {
  if (constraints.every((constraint) => constraint === undefined)) return command;
  // Appended to the filter's own $and, so its top-level predicates (the tenant) stay where they are.
  const and = (filter: Document | undefined, constraint: Document | undefined) =>
    constraint === undefined ? filter : { ...filter, $and: [...((filter?.$and as Document[] | undefined) ?? []), constraint] };
  switch (command.kind) {
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      return { ...command, filter: and(command.filter, constraints[0]) as Document };
    case 'bulkWrite':
      return {
        ...command,
        operations: command.operations.map((operation, index) => {
          const constraint = constraints[index];
          if (constraint === undefined) return operation;
          if ('updateOne' in operation)
            return { updateOne: { ...operation.updateOne, filter: and(operation.updateOne.filter, constraint) as Document } };
          if ('updateMany' in operation)
            return { updateMany: { ...operation.updateMany, filter: and(operation.updateMany.filter, constraint) as Document } };
          return operation;
        }),
      };
    default:
      return command;
  }
}

/**
 * `guard`: refuses any write that would break its collection's declared invariants (append-only,
 * guarded fields, immutable system fields) and confines forward-only state changes to documents in
 * an earlier state, by adding that condition to the write's own filter.
 */
export function invariantsLayer(invariantsOf: (collection: string) => ModelInvariants | undefined): Middleware {
  return {
    name: 'invariants',
    phase: 'guard',
    handle(ctx: OperationContext, next) {
      const collection = ctx.collection?.name;
      if (collection === undefined || ctx.aspects.access !== 'write' || ctx.aspects.admin) return next();
      // A tenant relocation copies documents that already passed these checks, verbatim.
      if (isRelocation(ctx.grant, ctx.command)) return next();
      const invariants = invariantsOf(collection);
      if (ctx.command.kind === 'deleteMany' && invariants?.mayExpire?.(ctx.grant)) return next();
      const upgrading = isSchemaUpgradeGrant(ctx.grant);
      const granted = upgrading || (invariants?.isGranted?.(ctx.grant) ?? false);
      const constraints = writesOf(ctx.command).map((write, index) =>
        check(write, invariants, granted, `${ctx.operation}[${index}]`, upgrading),
      );
      ctx.command = withConstraints(ctx.command, constraints);
      return next();
    },
  };
}
