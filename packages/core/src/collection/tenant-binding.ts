import type { AnyBulkWriteOperation, Document, Filter } from 'mongodb';
import { TenantMismatchError } from '../errors.js';
import type { CollectionCommand, CollectionTarget } from './collection-command.js';

/** The field that holds a document's tenant. */
export const TENANT_FIELD = 'tenant_id';

/**
 * Scopes a filter to one tenant: an equality on `tenant_id` is added; a filter that already names
 * the same tenant is kept, one naming another tenant is refused.
 */
export function scopeFilter(filter: Filter<Document>, tenant: string, where: string): Filter<Document> {
  if (Object.hasOwn(filter, TENANT_FIELD)) {
    if (filter[TENANT_FIELD] !== tenant) throw new TenantMismatchError(tenant, filter[TENANT_FIELD], where);
    return filter;
  }
  return { [TENANT_FIELD]: tenant, ...filter };
}

/** Stamps a new document with the tenant; a document carrying another tenant is refused. */
export function stampDocument(document: Document, tenant: string, where: string): Document {
  if (document[TENANT_FIELD] !== undefined && document[TENANT_FIELD] !== tenant)
    throw new TenantMismatchError(tenant, document[TENANT_FIELD], where);
  return { ...document, [TENANT_FIELD]: tenant };
}

function scopeBulkOperation(operation: AnyBulkWriteOperation<Document>, tenant: string, where: string): AnyBulkWriteOperation<Document> {
  if ('insertOne' in operation) return { insertOne: { document: stampDocument(operation.insertOne.document, tenant, where) } };
  if ('updateOne' in operation)
    return { updateOne: { ...operation.updateOne, filter: scopeFilter(operation.updateOne.filter, tenant, where) } };
  if ('updateMany' in operation)
    return { updateMany: { ...operation.updateMany, filter: scopeFilter(operation.updateMany.filter, tenant, where) } };
  if ('deleteOne' in operation)
    return { deleteOne: { ...operation.deleteOne, filter: scopeFilter(operation.deleteOne.filter, tenant, where) } };
  if ('deleteMany' in operation)
    return { deleteMany: { ...operation.deleteMany, filter: scopeFilter(operation.deleteMany.filter, tenant, where) } };
  if ('replaceOne' in operation) {
    return {
      replaceOne: {
        ...operation.replaceOne,
        filter: scopeFilter(operation.replaceOne.filter, tenant, where),
        replacement: stampDocument(operation.replaceOne.replacement, tenant, where),
      },
    };
  }
  return operation;
}

/**
 * Core's tenant binding at the choke point: for a tenant-owned collection it puts `tenant_id` into
 * every top-level filter, stamps every insert, and leads every pipeline with a `$match`. It is the
 * seam `@caas-db/tenancy` builds on (sub-pipelines, auditing, quotas, strategies).
 */
export function bindCommandToTenant(command: CollectionCommand, target: CollectionTarget, tenant: string): CollectionCommand {
  if (!target.tenantOwned) return command;
  const where = target.operation;
  switch (command.kind) {
    case 'insertOne':
      return { ...command, document: stampDocument(command.document, tenant, where) };
    case 'insertMany':
      return { ...command, documents: command.documents.map((document) => stampDocument(document, tenant, where)) };
    case 'bulkWrite':
      return { ...command, operations: command.operations.map((operation) => scopeBulkOperation(operation, tenant, where)) };
    case 'aggregate':
      return { ...command, pipeline: [{ $match: { [TENANT_FIELD]: tenant } }, ...command.pipeline] };
    default:
      return { ...command, filter: scopeFilter(command.filter, tenant, where) };
  }
}
