import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import type { Collection, Db, Document, UpdateFilter } from 'mongodb';
import type { CollectionPreset } from '../collection/collection-preset.js';
import type { ClientInternals } from '../connection/client-internals.js';
import { attemptOptions } from '../timeouts/time-budget.js';
import type { Terminal } from './command-pipeline.js';
import type { OperationContext } from './operation.js';

/**
 * The innermost step: turns the context's command into one driver call on the context's database,
 * within the transaction's session if there is one. Nothing else in the library calls the driver
 * with a command.
 */
export function createSend(client: ClientInternals, presetOf: (collection: string) => CollectionPreset | undefined): Terminal {
  // The driver builds a new Db and Collection object on every lookup; database-per-tenant reaches
  // many databases, so keep the most recently used ones.
  const collections = new LRUCache<string, Collection>({ max: 2_000 });
  const collectionOf = (db: Db, database: string | undefined, name: string): Collection => {
    const databaseName = database ?? db.databaseName;
    const key = `${databaseName}\u0000${name}`;
    let collection = collections.get(key);
    if (!collection) {
      const source = databaseName === db.databaseName ? db : db.client.db(databaseName);
      const preset = presetOf(name);
      collection = preset
        ? source.collection(name, {
            ...(preset.readPreference && { readPreference: preset.readPreference }),
            ...(preset.readConcern && { readConcern: { level: preset.readConcern } }),
            ...(preset.writeConcern && { writeConcern: preset.writeConcern }),
          })
        : source.collection(name);
      collections.set(key, collection);
    }
    return collection;
  };
  const send = (db: Db, ctx: OperationContext) => {
    ctx.sent = true;
    return dispatch(db, ctx, collectionOf);
  };
  const timed = async (db: Db, ctx: OperationContext) => {
    const started = performance.now();
    const report = {
      commandName: wireNames[ctx.command.kind],
      databaseName: ctx.database ?? db.databaseName,
      collection: ctx.collection?.name,
    };
    try {
      const result = await send(db, ctx);
      client.reportCommand({ ...report, durationMS: performance.now() - started });
      return result;
    } catch (error) {
      client.reportCommand({ ...report, durationMS: performance.now() - started }, error);
      throw error;
    }
  };
  return (ctx) => client.attempt((db) => (client.timesCommands() ? timed(db, ctx) : send(db, ctx)));
}

/** The wire command each kind of command becomes (the first, for kinds that send several). */
const wireNames: Readonly<Record<OperationContext['command']['kind'], string>> = {
  find: 'find',
  count: 'aggregate',
  distinct: 'distinct',
  insertOne: 'insert',
  insertMany: 'insert',
  updateOne: 'update',
  updateMany: 'update',
  findOneAndUpdate: 'findAndModify',
  deleteOne: 'delete',
  deleteMany: 'delete',
  bulkWrite: 'bulkWrite',
  aggregate: 'aggregate',
  listIndexes: 'listIndexes',
  createIndex: 'createIndexes',
  dropIndex: 'dropIndexes',
  explain: 'explain',
  indexStats: 'aggregate',
  listCollections: 'listCollections',
  createCollection: 'create',
  dropDatabase: 'dropDatabase',
  listDatabases: 'listDatabases',
  serverCommand: 'command',
};

/** One driver call (not async: the driver's own promise is the result, without another hop). */
function dispatch(
  db: Db,
  ctx: OperationContext,
  collectionOf: (db: Db, database: string | undefined, name: string) => Collection,
): Promise<unknown> {
  const { command } = ctx;
  // The session, and the time left of the operation's budget (timeBudget) as the server's maxTimeMS.
  const session = attemptOptions(ctx);
  const database = ctx.database === undefined || ctx.database === db.databaseName ? db : db.client.db(ctx.database);
  switch (command.kind) {
    case 'dropDatabase':
      return database.dropDatabase();
    case 'listDatabases':
      return db.admin().listDatabases({ nameOnly: true });
    case 'listCollections':
      return database.listCollections(command.filter, { nameOnly: false }).toArray();
    case 'serverCommand':
      return db.client.db(command.database).command(command.command, session);
    default:
      break;
  }
  const name = ctx.collection?.name;
  if (name === undefined) throw new TypeError(`${command.kind} needs a collection`);
  if (command.kind === 'createCollection') return database.createCollection(name, command.options);
  const collection = collectionOf(db, ctx.database, name);
  switch (command.kind) {
    case 'find':
      return collection.find(command.filter, { ...command.options, ...session }).toArray();
    case 'count':
      return collection.countDocuments(command.filter, { ...command.options, ...session });
    case 'distinct':
      return collection.distinct(command.field, command.filter, session);
    case 'insertOne':
      return collection.insertOne(command.document, session);
    case 'insertMany':
      return collection.insertMany(command.documents, { ordered: command.ordered, ...session });
    case 'updateOne':
    case 'updateMany': {
      const options = { upsert: command.upsert, ...(command.arrayFilters && { arrayFilters: command.arrayFilters }), ...session };
      return command.kind === 'updateOne'
        ? collection.updateOne(command.filter, command.update as UpdateFilter<Document>, options)
        : collection.updateMany(command.filter, command.update as UpdateFilter<Document>, options);
    }
    case 'findOneAndUpdate':
      return collection.findOneAndUpdate(command.filter, command.update as UpdateFilter<Document>, {
        upsert: command.upsert,
        returnDocument: command.returnDocument,
        ...(command.projection && { projection: command.projection }),
        ...(command.arrayFilters && { arrayFilters: command.arrayFilters }),
        ...session,
      });
    case 'deleteOne':
      return collection.deleteOne(command.filter, session);
    case 'deleteMany':
      return collection.deleteMany(command.filter, session);
    case 'bulkWrite':
      return collection.bulkWrite(command.operations, { ordered: command.ordered, ...session });
    case 'aggregate':
      return collection.aggregate(command.pipeline, { ...command.options, ...session }).toArray();
    case 'listIndexes':
      return collection
        .listIndexes(session)
        .toArray()
        .catch((error: unknown) => {
          // A collection that does not exist yet has no indexes.
          if ((error as { codeName?: string }).codeName === 'NamespaceNotFound') return [];
          throw error;
        });
    case 'createIndex':
      return collection.createIndex(command.key as never, { ...command.options, ...session });
    case 'dropIndex':
      return collection.dropIndex(command.name, session);
    case 'explain':
      return collection.find(command.filter, { ...command.options, ...session }).explain('executionStats');
    case 'indexStats':
      return collection.aggregate([{ $indexStats: {} }], session).toArray();
  }
}
