import type { AnyBulkWriteOperation, Document } from 'mongodb';
import type { CollectionCommand } from '../collection/collection-command.js';
import { TenancyViolationError, TenantMismatchError } from '../errors.js';
import { assertNoServerSideJavaScript, type PipelineScope, scopePipeline, withTenant } from './scope-pipeline.js';
import { TENANT_FIELD } from './tenant-field.js';
import { isVettedBatchFor, isVettedFor } from './vetted-documents.js';

function touchesTenantField(path: string): boolean {
  return path === TENANT_FIELD || path.startsWith(`${TENANT_FIELD}.`);
}

/** Stamps a new document with the tenant; a document carrying another tenant is refused. */
export function stampDocument(document: Document, tenant: string, where: string): Document {
  if (typeof document !== 'object' || document === null || Array.isArray(document))
    throw new TenancyViolationError(where, 'a document must be an object');
  if (document[TENANT_FIELD] !== undefined && document[TENANT_FIELD] !== tenant)
    throw new TenantMismatchError(tenant, document[TENANT_FIELD], where);
  return { ...document, [TENANT_FIELD]: tenant };
}

/**
 * Checks an update in tenant scope: no operator may set, unset or rename `tenant_id` (an upsert's
 * `$setOnInsert` of the same tenant is the one exception), pipeline updates are refused, and an
 * upsert gets `$setOnInsert: { tenant_id }` so the document it creates belongs to the tenant.
 */
export function scopeUpdate(update: Document | Document[], tenant: string, upsert: boolean, path: string): Document {
  if (Array.isArray(update))
    throw new TenancyViolationError(path, 'pipeline updates are refused in tenant scope (they can rewrite tenant_id)');
  if (typeof update !== 'object' || update === null) throw new TenancyViolationError(path, 'an update must be an object');
  assertNoServerSideJavaScript(update, path);
  for (const [operator, fields] of Object.entries(update)) {
    if (!operator.startsWith('$'))
      throw new TenancyViolationError(`${path}.${operator}`, 'replacement documents are refused in updates; use update operators');
    if (typeof fields !== 'object' || fields === null) continue;
    for (const [field, value] of Object.entries(fields as Document)) {
      const renamesOntoTenant = operator === '$rename' && typeof value === 'string' && touchesTenantField(value);
      if (!touchesTenantField(field) && !renamesOntoTenant) continue;
      if (operator === '$setOnInsert' && field === TENANT_FIELD) {
        if (value !== tenant) throw new TenantMismatchError(tenant, value, `${path}.$setOnInsert`);
        continue;
      }
      throw new TenancyViolationError(
        `${path}.${operator}.${field}`,
        `${operator} of tenant_id is refused: a document never changes tenant`,
      );
    }
  }
  if (!upsert) return update;
  return { ...update, $setOnInsert: { ...(update.$setOnInsert as Document | undefined), [TENANT_FIELD]: tenant } };
}

function scopeFilter(filter: Document | undefined, tenant: string, path: string): Document {
  assertNoServerSideJavaScript(filter, path);
  return withTenant(filter, tenant, path);
}

function scopeBulkOperation(operation: AnyBulkWriteOperation<Document>, tenant: string, path: string): AnyBulkWriteOperation<Document> {
  if (typeof operation !== 'object' || operation === null) throw new TenancyViolationError(path, 'a bulk operation must be an object');
  if ('insertOne' in operation) {
    if (isVettedFor(operation.insertOne.document, tenant)) return operation;
    assertNoServerSideJavaScript(operation.insertOne.document, `${path}.insertOne`);
    return { insertOne: { document: stampDocument(operation.insertOne.document, tenant, path) } };
  }
  if ('replaceOne' in operation) {
    const { filter, replacement } = operation.replaceOne;
    assertNoServerSideJavaScript(replacement, `${path}.replaceOne.replacement`);
    return {
      replaceOne: {
        ...operation.replaceOne,
        filter: scopeFilter(filter, tenant, `${path}.replaceOne.filter`),
        replacement: stampDocument(replacement, tenant, path),
      },
    };
  }
  if ('updateOne' in operation || 'updateMany' in operation) {
    const kind = 'updateOne' in operation ? 'updateOne' : 'updateMany';
    const spec = 'updateOne' in operation ? operation.updateOne : operation.updateMany;
    if (spec.arrayFilters !== undefined) assertNoServerSideJavaScript(spec.arrayFilters, `${path}.${kind}.arrayFilters`);
    return {
      [kind]: {
        ...spec,
        filter: scopeFilter(spec.filter, tenant, `${path}.${kind}.filter`),
        update: scopeUpdate(spec.update as Document, tenant, spec.upsert ?? false, `${path}.${kind}.update`),
      },
    } as AnyBulkWriteOperation<Document>;
  }
  if ('deleteOne' in operation)
    return { deleteOne: { ...operation.deleteOne, filter: scopeFilter(operation.deleteOne.filter, tenant, `${path}.deleteOne.filter`) } };
  if ('deleteMany' in operation)
    return {
      deleteMany: { ...operation.deleteMany, filter: scopeFilter(operation.deleteMany.filter, tenant, `${path}.deleteMany.filter`) },
    };
  throw new TenancyViolationError(path, 'unknown bulk operation');
}

/** What {@link scopeCommand} needs to know besides the command. */
export interface CommandScope extends PipelineScope {
  /** The collection the command addresses, when it addresses one. */
  readonly collection: { readonly name: string; readonly tenantOwned: boolean } | undefined;
}

/**
 * Scopes one command to the tenant in scope, completely and by ownership: on a tenant-owned
 * collection every filter (find, count, distinct, updates, deletes, findOneAndUpdate, each bulk
 * item, explain) gets the tenant predicate; inserts and replacements are stamped, and one naming
 * another tenant is refused; upserts set `tenant_id` on insert; updates of `tenant_id` are refused;
 * `$indexStats` is refused. Pipelines are scoped at every level by the ownership of the collection
 * each level reads, also on a collection that is not tenant-owned (`scopePipeline`).
 *
 * With no tenant in scope, `scope.onUnbound` is called for every tenant-owned part: it throws to
 * fail closed (`@caas-db/tenancy`) or returns to leave the command as it is (core without tenancy).
 * @throws {TenancyViolationError} or {TenantMismatchError}; nothing is sent then.
 */
export function scopeCommand(command: CollectionCommand, scope: CommandScope): CollectionCommand {
  const owned = scope.collection?.tenantOwned ?? false;
  if (command.kind === 'aggregate') return { ...command, pipeline: scopePipeline(command.pipeline, owned, scope) };
  if (!owned) return command;
  switch (command.kind) {
    case 'listIndexes':
    case 'createIndex':
    case 'dropIndex':
    case 'listCollections':
    case 'createCollection':
    case 'dropDatabase':
    case 'listDatabases':
    case 'serverCommand':
      return command; // schema and server commands hold no tenant's documents
  }
  const tenant = scope.tenant;
  // $indexStats counts index use, no documents: an operator may read it unbound, never a tenant.
  if (command.kind === 'indexStats' && tenant === undefined) return command;
  if (tenant === undefined) {
    scope.onUnbound(command.kind);
    return command;
  }
  switch (command.kind) {
    case 'find':
    case 'explain':
      assertNoServerSideJavaScript(command.options, 'options');
      return { ...command, filter: scopeFilter(command.filter, tenant, 'filter') };
    case 'count':
    case 'distinct':
    case 'deleteOne':
    case 'deleteMany':
      return { ...command, filter: scopeFilter(command.filter, tenant, 'filter') };
    case 'insertOne':
      if (isVettedFor(command.document, tenant)) return command;
      assertNoServerSideJavaScript(command.document, 'document');
      return { ...command, document: stampDocument(command.document, tenant, 'document') };
    case 'insertMany':
      if (!Array.isArray(command.documents)) throw new TenancyViolationError('documents', 'must be an array');
      if (isVettedBatchFor(command.documents, tenant)) return command;
      assertNoServerSideJavaScript(command.documents, 'documents');
      return { ...command, documents: command.documents.map((document, index) => stampDocument(document, tenant, `documents.${index}`)) };
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      if (command.arrayFilters !== undefined) assertNoServerSideJavaScript(command.arrayFilters, 'arrayFilters');
      return {
        ...command,
        filter: scopeFilter(command.filter, tenant, 'filter'),
        update: scopeUpdate(command.update, tenant, command.upsert, 'update'),
      };
    case 'bulkWrite':
      if (!Array.isArray(command.operations)) throw new TenancyViolationError('operations', 'must be an array');
      return {
        ...command,
        operations: command.operations.map((operation, index) => scopeBulkOperation(operation, tenant, `operations.${index}`)),
      };
    case 'indexStats':
      throw new TenancyViolationError('indexStats', '$indexStats reports on every tenant’s index use; refused in tenant scope');
  }
}
