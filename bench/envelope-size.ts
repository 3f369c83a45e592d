/**
 * pnpm bench:envelope — bytes per stored text message before and after the compact envelope (no
 * empty `reactions`, `read_by`, `deleted_at` stored), and storage efficiency (ciphertext bytes over
 * stored bytes) at 200 B and 1 KB of ciphertext. "Before" documents are the same messages with the
 * empty values put back where the previous version wrote them. Document bytes are `bsonsize` of the
 * stored documents (and `collStats` where the server reports it); the index estimate is, per
 * declared index of `messages`, the BSON size of the document's key values plus an 8-byte record id
 * (uncompressed: WiredTiger's prefix compression makes real index files smaller). A measurement,
 * not a test.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { BSON, type Document, MongoClient, ObjectId } from 'mongodb';
import { createDataClient, createDataLayer, messagesDefinition } from '../packages/core/src/index.js';
import { startMongo } from '../packages/testing/src/index.js';

const COUNT = Number(process.env.BENCH_MESSAGES ?? 1000);
const CIPHERTEXTS = [200, 1024];
const out = (line: string) => process.stdout.write(`${line}\n`);

const mongo = await startMongo();
const machine = `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
out(`machine: ${machine}\nserver: ${mongo.description}\n${COUNT} text messages per ciphertext size\n`);
const database = `envelope_${Date.now()}`;
const client = createDataClient({ uri: mongo.uri, database });
const data = createDataLayer({ client });
await data.syncIndexes();
const acme = data.forTenant('acme');
const raw = new MongoClient(mongo.uri);
const db = raw.db(database);

/** The previous envelope: the empty values where the previous version's `prepareInsert` put them. */
function previousEnvelope(stored: Document): Document {
  const { _id, tenant_id, conversation_id, sender_id, content, status, schema_version, created_at, updated_at, ...rest } = stored;
  return {
    _id,
    tenant_id,
    conversation_id,
    sender_id,
    content,
    reactions: [],
    read_by: [],
    status,
    ...rest,
    schema_version,
    created_at,
    updated_at,
    deleted_at: null,
  };
}

/** The BSON value of a dotted path (null when absent, as an index stores it). */
function valueAt(document: Document, path: string): unknown {
  return (
    path
      .split('.')
      .reduce<unknown>((current, key) => (current && typeof current === 'object' ? (current as Document)[key] : undefined), document) ??
    null
  );
}

/** Uncompressed index bytes of one document over every declared index (key values + record id each). */
function indexBytes(document: Document): number {
  let total = 0;
  for (const index of [{ key: { _id: 1 } }, ...messagesDefinition.indexes]) {
    const key = Object.fromEntries(Object.keys(index.key).map((field, position) => [String(position), valueAt(document, field)]));
    total += BSON.calculateObjectSize(key) - 5 + 8;
  }
  return total;
}

async function collStats(name: string): Promise<{ avgObjSize: number | null; size: number | null }> {
  try {
    const stats = await db.command({ collStats: name });
    return {
      avgObjSize: typeof stats.avgObjSize === 'number' ? stats.avgObjSize : null,
      size: typeof stats.size === 'number' ? stats.size : null,
    };
  } catch {
    return { avgObjSize: null, size: null };
  }
}

const rows = [];
for (const ciphertext of CIPHERTEXTS) {
  const [alice, bob] = [new ObjectId(), new ObjectId()];
  const { conversation } = await acme.conversations.createDirect([alice, bob]);
  const encrypted = 'q'.repeat(ciphertext);
  const created = await acme.messages.createMany(
    Array.from({ length: COUNT }, () => ({
      conversation_id: conversation._id,
      sender_id: alice,
      content: { type: 'text' as const, encrypted_data: encrypted },
    })),
  );
  const stored = await db
    .collection('messages')
    .find({ _id: { $in: created.map((message) => message._id) } })
    .toArray();
  const before = stored.map(previousEnvelope);
  const beforeName = `messages_previous_envelope_${ciphertext}`;
  await db.collection(beforeName).insertMany(before.map((document) => ({ ...document })));
  const afterName = `messages_compact_envelope_${ciphertext}`;
  await db.collection(afterName).insertMany(stored.map((document) => ({ ...document })));
  const average = (documents: Document[], size: (document: Document) => number) =>
    documents.reduce((total, document) => total + size(document), 0) / documents.length;
  for (const [envelope, documents, name] of [
    ['previous (empty values stored)', before, beforeName],
    ['compact (this version)', stored, afterName],
  ] as const) {
    const documentBytes = average(documents, (document) => BSON.calculateObjectSize(document));
    const indexEstimate = average(documents, indexBytes);
    const stats = await collStats(name);
    const row = {
      ciphertext,
      envelope,
      documentBytes: Math.round(documentBytes),
      collStatsAvgObjSize: stats.avgObjSize === null ? null : Math.round(stats.avgObjSize),
      indexEstimate: Math.round(indexEstimate),
      totalBytes: Math.round(documentBytes + indexEstimate),
      efficiency: Number((ciphertext / (documentBytes + indexEstimate)).toFixed(3)),
      documentEfficiency: Number((ciphertext / documentBytes).toFixed(3)),
    };
    rows.push(row);
    out(
      `${String(ciphertext).padStart(5)} B ciphertext  ${envelope.padEnd(32)} document ${row.documentBytes} B (collStats avgObjSize ${row.collStatsAvgObjSize ?? 'n/a'})  + index ≈ ${row.indexEstimate} B  = ${row.totalBytes} B  efficiency ${(row.efficiency * 100).toFixed(1)} % (document only ${(row.documentEfficiency * 100).toFixed(1)} %)`,
    );
  }
}

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/envelope-size.json', import.meta.url),
  `${JSON.stringify({ machine, server: mongo.description, messages: COUNT, rows }, null, 2)}\n`,
);
await raw.close();
await client.close();
await mongo.stop();
