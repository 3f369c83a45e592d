import {
  type AnyBulkWriteOperation,
  type CollectionCommand,
  type Document,
  stampDocument,
  TENANT_FIELD,
  TenantMismatchError,
} from '@caas-db/core';
import { TenancyViolationError } from './errors.js';
import { assertNoServerSideJavaScript, type PipelineScopeOptions, scopePipeline, withTenant } from './scope-pipeline.js';

function touchesTenantField(path: string): boolean {
  return path === TENANT_FIELD || path.startsWith(`${TENANT_FIELD}.`);
}

/**
 * Checks an update in tenant scope: no operator may set, unset or rename `tenant_id` (an upsert's
 * `$setOnInsert` of the same tenant is the one exception), pipeline updates are refused, and an
 * upsert gets `$setOnInsert: { tenant_id }` so the document it creates belongs to the tenant.
 */
export function scopeUpdate(update: Document | Document[], tenant: string, upsert: boolean, path: string): Document {
  if (Array.isArray(update))
    throw new TenancyViolationError(path, 'pipeline updates are refused in tenant scope (they can rewrite tenant_id)');
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
  if ('insertOne' in operation) {
    assertNoServerSideJavaScript(operation.insertOne.document, `${path}.insertOne`);
    return { insertOne: { document: stampDocument(operation.insertOne.document, tenant, path) } };
  }
  if ('replaceOne' in operation) {
    const { filter, replacement, upsert } = operation.replaceOne;
    return {
      replaceOne: {
        ...operation.replaceOne,
        filter: scopeFilter(filter, tenant, `${path}.filter`),
        replacement: stampDocument(replacement, tenant, path),
        ...(upsert !== undefined && { upsert }),
      },
    };
  }
  if ('updateOne' in operation || 'updateMany' in operation) {
    const kind = 'updateOne' in operation ? 'updateOne' : 'updateMany';
    const spec = 'updateOne' in operation ? operation.updateOne : operation.updateMany;
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

/**
 * Scopes one command on a tenant-owned collection to `tenant`, completely: every filter (find,
 * count, distinct, updates, deletes, findOneAndUpdate, each bulk item) gets the tenant predicate;
 * inserts and replacements are stamped, and one naming another tenant is refused; upserts set
 * `tenant_id` on insert; updates of `tenant_id` are refused; pipelines are scoped at every level.
 * @throws {TenancyViolationError} or {TenantMismatchError}; nothing is sent then.
 */
export function scopeCommand(command: CollectionCommand, tenant: string, options: PipelineScopeOptions): CollectionCommand {
  switch (command.kind) {
    case 'find':
      assertNoServerSideJavaScript(command.options, 'options');
      return { ...command, filter: scopeFilter(command.filter, tenant, 'filter') };
    case 'count':
    case 'distinct':
    case 'deleteOne':
    case 'deleteMany':
      return { ...command, filter: scopeFilter(command.filter, tenant, 'filter') };
    case 'insertOne':
      assertNoServerSideJavaScript(command.document, 'document');
      return { ...command, document: stampDocument(command.document, tenant, 'document') };
    case 'insertMany':
      assertNoServerSideJavaScript(command.documents, 'documents');
      return { ...command, documents: command.documents.map((document, index) => stampDocument(document, tenant, `documents.${index}`)) };
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      return {
        ...command,
        filter: scopeFilter(command.filter, tenant, 'filter'),
        update: scopeUpdate(command.update, tenant, command.upsert, 'update'),
      };
    case 'bulkWrite':
      return {
        ...command,
        operations: command.operations.map((operation, index) => scopeBulkOperation(operation, tenant, `operations.${index}`)),
      };
    case 'aggregate':
      return { ...command, pipeline: scopePipeline(command.pipeline, tenant, options) };
  }
}
