import { randomBytes } from 'node:crypto';
import { type Db, type Document, MongoClient, type MongoClientOptions } from 'mongodb';

/**
 * What the connected server can do, found by probing it once. Code for MongoDB 7+ uses these to
 * pick a strategy (e.g. a time-series collection or a plain one), and tests use them to skip
 * what the server lacks, saying why.
 */
export interface Capabilities {
  /** The version the server reports (`buildInfo.version`). */
  serverVersion: string;
  /** The highest wire version the server speaks. */
  maxWireVersion: number;
  /** Logical sessions (needed for transactions, retryable writes, causal consistency). */
  sessions: boolean;
  /** Multi-document transactions (a replica set or sharded cluster with sessions). */
  transactions: boolean;
  /** `watch()` delivers change events. */
  changeStreams: boolean;
  /** `$text` queries over a text index. */
  textSearch: boolean;
  /** The server runs a TTL monitor that expires documents. */
  ttlIndexes: boolean;
  /** Partial indexes are honoured (a unique partial index ignores documents outside its filter). */
  partialIndexes: boolean;
  /** Collations are honoured (strength 2 matches case-insensitively). */
  collation: boolean;
  /** `$lookup` with `let` and `pipeline`. */
  lookup: boolean;
  /** `$lookup` with `localField`/`foreignField` and `pipeline` together (the 5.0 form). */
  lookupLocalFieldWithPipeline: boolean;
  /** `$graphLookup` with `restrictSearchWithMatch` (the form a tenant-scoped query needs). */
  graphLookup: boolean;
  /** `$unionWith`. */
  unionWith: boolean;
  /** `arrayFilters` in updates. */
  arrayFilters: boolean;
  /** `explain` of find and aggregate. */
  explain: boolean;
  /** `$jsonSchema` validators reject invalid documents. */
  schemaValidation: boolean;
  /** Collections created with `timeseries` are real time-series collections. */
  timeSeries: boolean;
  /** Server-side JavaScript (`$where`, `$function`, `$accumulator`). */
  serverSideJavaScript: boolean;
  /** Updates given as an aggregation pipeline. */
  pipelineUpdates: boolean;
}

/** The names of the boolean capabilities. */
export type CapabilityName = {
  [Name in keyof Capabilities]: Capabilities[Name] extends boolean ? Name : never;
}[keyof Capabilities];

/** Probe documents use small integer ids. */
type ProbeDocument = { _id: number } & Document;

async function succeeds(probe: () => Promise<boolean>): Promise<boolean> {
  try {
    return await probe();
  } catch {
    return false;
  }
}

async function helloOf(db: Db): Promise<Document> {
  try {
    return await db.admin().command({ hello: 1 });
  } catch {
    // Servers that predate `hello` (and mongo-java-server) answer the legacy form.
    return db.admin().command({ isMaster: 1 });
  }
}

/**
 * Probes a server once, in a scratch database that is dropped afterwards.
 * @param db - any database of the client to probe; probes run in a scratch database `<name>_caps_<random>`.
 * @param isolatedConnection - opens a throwaway client for probes that can break a connection
 *   (mongo-java-server closes the socket on `$graphLookup`).
 */
export async function detectCapabilities(db: Db, isolatedConnection: { uri: string; options: MongoClientOptions }): Promise<Capabilities> {
  const hello = await helloOf(db);
  const buildInfo = await db
    .admin()
    .command({ buildInfo: 1 })
    .catch(() => ({}) as Document);
  const sessions = hello.logicalSessionTimeoutMinutes != null;
  const transactions = sessions && (typeof hello.setName === 'string' || hello.msg === 'isdbgrid');

  // A random suffix keeps concurrent probes of one server apart.
  const scratch = db.client.db(`${db.databaseName.slice(0, 30)}_caps_${randomBytes(4).toString('hex')}`);
  try {
    const items = scratch.collection<ProbeDocument>('__caas_probe_items');
    await items.insertMany([
      { _id: 1, s: 'abc', tags: [{ k: 1 }, { k: 2 }], text: 'quick brown fox', parent: null },
      { _id: 2, s: 'ABC', tags: [], text: 'lazy dog', parent: 1 },
    ]);
    const joined = scratch.collection<ProbeDocument>('__caas_probe_joined');
    await joined.insertOne({ _id: 1, ref: 1 });

    const lookup = await succeeds(async () => {
      const [row] = await items
        .aggregate([
          { $match: { _id: 1 } },
          {
            $lookup: {
              from: '__caas_probe_joined',
              let: { id: '$_id' },
              pipeline: [{ $match: { $expr: { $eq: ['$ref', '$$id'] } } }],
              as: 'j',
            },
          },
        ])
        .toArray();
      return Array.isArray(row?.j) && row.j.length === 1;
    });
    const lookupLocalFieldWithPipeline = await succeeds(async () => {
      const [row] = await items
        .aggregate([
          { $match: { _id: 1 } },
          { $lookup: { from: '__caas_probe_joined', localField: '_id', foreignField: 'ref', pipeline: [], as: 'j' } },
        ])
        .toArray();
      return Array.isArray(row?.j) && row.j.length === 1;
    });
    const unionWith = await succeeds(async () => (await items.aggregate([{ $unionWith: '__caas_probe_joined' }]).toArray()).length === 3);
    const arrayFilters = await succeeds(async () => {
      await items.updateOne({ _id: 1 }, { $set: { 'tags.$[t].hit': true } }, { arrayFilters: [{ 't.k': 2 }] });
      const row = await items.findOne({ _id: 1 });
      return row?.tags?.[1]?.hit === true && row.tags[0]?.hit === undefined;
    });
    const collation = await succeeds(
      async () => (await items.countDocuments({ s: 'abc' }, { collation: { locale: 'en', strength: 2 } })) === 2,
    );
    const explain = await succeeds(async () => {
      await items.find({ s: 'abc' }).explain();
      return true;
    });
    const textSearch = await succeeds(async () => {
      await items.createIndex({ text: 'text' });
      return (await items.countDocuments({ $text: { $search: 'fox' } })) === 1;
    });
    const partialIndexes = await succeeds(async () => {
      const partial = scratch.collection('__caas_probe_partial');
      await partial.createIndex({ k: 1 }, { unique: true, partialFilterExpression: { live: true } });
      await partial.insertMany([
        { k: 1, live: false },
        { k: 1, live: false },
      ]);
      return true;
    });
    const schemaValidation = await succeeds(async () => {
      await scratch.createCollection('__caas_probe_validated', { validator: { $jsonSchema: { required: ['a'] } } });
      try {
        await scratch.collection('__caas_probe_validated').insertOne({ b: 1 });
        return false;
      } catch {
        return true;
      }
    });
    const timeSeries = await succeeds(async () => {
      await scratch.createCollection('__caas_probe_series', { timeseries: { timeField: 't', metaField: 'm' } });
      const [info] = await scratch.listCollections({ name: '__caas_probe_series' }).toArray();
      return info?.type === 'timeseries';
    });
    const serverSideJavaScript = await succeeds(async () => (await items.countDocuments({ $where: 'this._id === 1' })) === 1);
    const pipelineUpdates = await succeeds(async () => {
      await items.updateOne({ _id: 2 }, [{ $set: { piped: true } }]);
      return (await items.findOne({ _id: 2 }))?.piped === true;
    });
    const ttlIndexes = await succeeds(async () => {
      const status = await db.admin().command({ serverStatus: 1 });
      return typeof status.metrics?.ttl?.passes !== 'undefined';
    });
    const changeStreams = await succeeds(async () => {
      const stream = items.watch([], { maxAwaitTimeMS: 50 });
      try {
        await stream.tryNext();
        return true;
      } finally {
        await stream.close();
      }
    });
    const graphLookup = await succeeds(async () => {
      const throwaway = new MongoClient(isolatedConnection.uri, {
        ...isolatedConnection.options,
        monitorCommands: false,
        serverSelectionTimeoutMS: 5000,
      });
      try {
        const rows = await throwaway
          .db(scratch.databaseName)
          .collection('__caas_probe_items')
          .aggregate([
            { $match: { _id: 2 } },
            {
              $graphLookup: {
                from: '__caas_probe_items',
                startWith: '$parent',
                connectFromField: 'parent',
                connectToField: '_id',
                as: 'up',
                restrictSearchWithMatch: { s: 'abc' },
              },
            },
          ])
          .toArray();
        return rows[0]?.up?.length === 1;
      } finally {
        await throwaway.close().catch(() => undefined);
      }
    });

    return {
      serverVersion: typeof buildInfo.version === 'string' ? buildInfo.version : 'unknown',
      maxWireVersion: Number(hello.maxWireVersion ?? 0),
      sessions,
      transactions,
      changeStreams,
      textSearch,
      ttlIndexes,
      partialIndexes,
      collation,
      lookup,
      lookupLocalFieldWithPipeline,
      graphLookup,
      unionWith,
      arrayFilters,
      explain,
      schemaValidation,
      timeSeries,
      serverSideJavaScript,
      pipelineUpdates,
    };
  } finally {
    await scratch.dropDatabase().catch(() => undefined);
  }
}
