import {
  type AnyBulkWriteOperation,
  type CollectionCommand,
  type CollectionTarget,
  cacheTags,
  type Document,
  ObjectId,
} from '@caas-db/core';

/** What the invalidator must know about the cached lists of each collection. */
export interface ListRules {
  /** Fields whose values name a cached list: `{ messages: ['conversation_id'], conversations: ['participants.user_id'] }`. */
  listFields: Readonly<Record<string, readonly string[]>>;
  /** Collections whose cached lists are ordered by a field every update changes (`updated_at`): any update invalidates them. */
  volatileLists: ReadonlySet<string>;
}

/** The lists of caas-db's cached repository methods. */
export const defaultListRules: ListRules = {
  listFields: {
    messages: ['conversation_id'],
    conversations: ['participants.user_id'],
    users: ['external_id'],
    clients: ['tenant_id'],
  },
  volatileLists: new Set(['conversations']),
};

/** The values at a dotted path, through arrays (`participants.user_id` of every participant). */
function valuesAt(document: unknown, path: readonly string[]): unknown[] {
  if (path.length === 0) return Array.isArray(document) ? document : [document];
  if (Array.isArray(document)) return document.flatMap((item) => valuesAt(item, path));
  if (document === null || typeof document !== 'object' || document instanceof ObjectId) return [];
  const [head, ...rest] = path;
  return valuesAt((document as Document)[head as string], rest);
}

/** The ids a filter pins by `_id` equality (or `$in`), or undefined when it does not. */
function idsOf(filter: Document | undefined): unknown[] | undefined {
  const id = filter?._id;
  if (id === undefined) return undefined;
  if (id !== null && typeof id === 'object' && !(id instanceof ObjectId)) {
    const inList = (id as Document).$in;
    return Array.isArray(inList) ? inList : undefined;
  }
  return [id];
}

/** Top-level field paths an update writes. */
function pathsOf(update: Document): string[] {
  return Object.values(update).flatMap((fields) => (fields && typeof fields === 'object' ? Object.keys(fields as Document) : []));
}

/**
 * The tags a successful write makes stale, derived from the command alone: documents it pinned by
 * `_id`, the lists inserted documents join, every list of the collection when an update may move
 * documents between lists, and everything of the collection when the targets are unknown.
 */
export function tagsOfWrite(command: CollectionCommand, target: CollectionTarget, rules: ListRules = defaultListRules): string[] {
  const collection = target.name;
  const fields = rules.listFields[collection] ?? [];
  const tags = new Set<string>();
  // The tenant a write's documents belong to: the scoped command's `tenant_id`, else the tenant it
  // ran for. Platform collections (`clients`) have no owning tenant: their `tenant_id` is data, and
  // their entries are read with none, so their tags are the tenant-less ones.
  const tenantOf = (document: Document | undefined) =>
    !target.tenantOwned ? undefined : typeof document?.tenant_id === 'string' ? document.tenant_id : target.tenant;
  /** One document: its tenant's entries and those read with no tenant known; every tenant's when the write's tenant is unknown. */
  const documentTags = (tenant: string | undefined, id: unknown) => {
    if (target.tenantOwned && tenant !== undefined) {
      tags.add(cacheTags.document(tenant, collection, id));
      tags.add(cacheTags.document(undefined, collection, id));
    } else tags.add(cacheTags.document('*', collection, id));
  };
  const everything = (filter: Document | undefined) => {
    const tenant = tenantOf(filter);
    tags.add(cacheTags.collection(tenant ?? '*', collection));
    if (tenant === undefined) return;
    tags.add(cacheTags.collection(undefined, collection));
  };
  const joinLists = (document: Document) => {
    const tenant = tenantOf(document);
    documentTags(tenant, document._id);
    for (const field of fields) {
      for (const value of valuesAt(document, field.split('.'))) tags.add(cacheTags.list(tenant, collection, field, value));
    }
    if (rules.volatileLists.has(collection)) tags.add(cacheTags.lists(tenant, collection));
  };
  const update = (filter: Document, change: Document, upsert: boolean) => {
    const ids = idsOf(filter);
    if (!ids) everything(filter);
    for (const id of ids ?? []) documentTags(tenantOf(filter), id);
    const roots = new Set(pathsOf(change).map((path) => path.split('.')[0]));
    // Soft delete and restore move a document in or out of every live list and lookup.
    const touchesList = roots.has('deleted_at') || fields.some((field) => roots.has(field.split('.')[0]));
    if (upsert || touchesList || rules.volatileLists.has(collection)) {
      const tenant = tenantOf(filter);
      if (tenant === undefined) everything(filter);
      else tags.add(cacheTags.lists(tenant, collection));
      // A list keyed by a value the write sets or matches on may gain the document.
      for (const source of [filter, change.$set as Document | undefined, change.$setOnInsert as Document | undefined]) {
        if (!source) continue;
        for (const field of fields) {
          const value = source[field];
          if (value !== undefined && (typeof value !== 'object' || value instanceof ObjectId))
            tags.add(cacheTags.list(tenant, collection, field, value));
        }
      }
    }
  };
  const remove = (filter: Document) => {
    // A hard delete only removes: entries containing the document carry its tag.
    const ids = idsOf(filter);
    if (!ids) return everything(filter);
    for (const id of ids) documentTags(tenantOf(filter), id);
  };
  const bulk = (operation: AnyBulkWriteOperation<Document>) => {
    if ('insertOne' in operation) joinLists(operation.insertOne.document);
    else if ('updateOne' in operation)
      update(operation.updateOne.filter, operation.updateOne.update as Document, operation.updateOne.upsert ?? false);
    else if ('updateMany' in operation)
      update(operation.updateMany.filter, operation.updateMany.update as Document, operation.updateMany.upsert ?? false);
    else if ('replaceOne' in operation) {
      update(operation.replaceOne.filter, { $set: operation.replaceOne.replacement }, operation.replaceOne.upsert ?? false);
      joinLists(operation.replaceOne.replacement);
    } else if ('deleteOne' in operation) remove(operation.deleteOne.filter);
    else if ('deleteMany' in operation) remove(operation.deleteMany.filter);
  };

  switch (command.kind) {
    case 'insertOne':
      joinLists(command.document);
      break;
    case 'insertMany':
      for (const document of command.documents) joinLists(document);
      break;
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      update(command.filter, command.update, command.upsert);
      break;
    case 'deleteOne':
    case 'deleteMany':
      remove(command.filter);
      break;
    case 'bulkWrite':
      for (const operation of command.operations) bulk(operation);
      break;
    default:
      break;
  }
  return [...tags];
}
