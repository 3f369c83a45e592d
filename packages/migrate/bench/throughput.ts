/**
 * Seed and migration throughput for 1,000,000 messages (pnpm bench:seed-migrate), each side by
 * side with the raw driver doing the same work in the same run, each side on a freshly started
 * server (mongo-java-server keeps every write of a run in its in-memory oplog, so a side that ran
 * second would run on a fuller heap):
 *
 * - seed: `seed()` through the repositories (validated, batched inserts, replies and each
 *   conversation's newest message through messages.create) vs raw `insertMany` of equivalent documents;
 * - migration: `migrate up` of a tenant migration that upgrades every message from
 *   schema_version 1 to 2 with `upgradeDocuments` (batches of CAAS_DB_BENCH_BATCH, default 1000, a checkpoint per batch) vs a raw
 *   `_id`-range scan + `bulkWrite` of the same `$set`s.
 *
 * CAAS_DB_BENCH_MESSAGES sets the size (default 1,000,000). MONGODB_URI points it at a real server.
 *
 * On mongo-java-server only (never on MongoDB, never in the library), this script adds unique
 * indexes whose key sets equal the exact filters the library sends for by-id writes. That server
 * uses an index only for a filter whose key set equals a unique index's key set (plain values),
 * so `{ tenant_id, _id, schema_version }` (the guarded upgrade write-back) and
 * `{ tenant_id, _id, conversation_id, deleted_at }` (a reply's parent check) would otherwise scan
 * the whole collection; MongoDB serves both from the `_id` index. The raw driver gets the same
 * indexes and sends the same filters. What stays a scan here: the migration's `_id`-range batch
 * read (`{ tenant_id, _id: { $gt } }`, sorted, limited) and a reply's counter update
 * (`{ tenant_id, _id, 'thread.applied': { $ne } }`): both index-served on MongoDB.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDataClient, createDataLayer, type Document, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { MONGO_JAVA_SERVER_VERSION, seed, startMongo } from '@caas-db/testing';
import type { Db } from 'mongodb';
import { createMigrator } from '../src/index.js';

const messages = Number(process.env.CAAS_DB_BENCH_MESSAGES ?? 1_000_000);
const tenants = 2;
// 100 conversations of 5,000 messages each per tenant at a million: history-heavy.
const conversations = Number(process.env.CAAS_DB_BENCH_CONVERSATIONS ?? 100);
// Few replies by default: on mongo-java-server each reply's counter update scans the collection
// (see above), so a realistic 2% would measure that server's scans, not the library.
const replyRatio = Number(process.env.CAAS_DB_BENCH_REPLY_RATIO ?? 0.0002);
// Documents per migration batch (upgradeDocuments) and per raw batch read. On mongo-java-server
// every batch read is a collection scan plus a sort of what follows the checkpoint, so the batch
// count, not the document count, sets the migration's cost there.
const batchSize = Number(process.env.CAAS_DB_BENCH_BATCH ?? 1000);
const perConversation = messages / tenants / conversations;

const format = (n: number) => Math.round(n).toLocaleString('en-US');
/**
 * mongo-java-server only: unique indexes equal to the by-id filters the library sends (see the
 * header). Unique because that server looks only at unique indexes; `_id` in each makes it so.
 */
async function serverIndexes(database: Db): Promise<void> {
  await database
    .collection('messages')
    .createIndex({ _id: 1, tenant_id: 1, schema_version: 1 }, { unique: true, name: 'bench_upgrade_guard' });
  await database
    .collection('messages')
    .createIndex({ _id: 1, tenant_id: 1, conversation_id: 1, deleted_at: 1 }, { unique: true, name: 'bench_reply_parent' });
}

const cpuMicros = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

async function main() {
  let server = await startMongo();
  const javaServer = server.backend === 'mongo-java-server';
  console.log(
    `server: ${server.description}; ${cpus().length} cores; load average ${loadavg()
      .map((load) => load.toFixed(1))
      .join(
        ' ',
      )} at start; ${format(messages)} messages, reply ratio ${replyRatio}, migration batches of ${format(batchSize)}; server-specific indexes ${javaServer ? 'on' : 'off'}`,
  );
  try {
    // ---- seed through the repositories
    const client = createDataClient({ uri: server.uri, database: 'bench_seed', pool: { maxSize: 20 } });
    const data = createDataLayer({ client });
    await data.syncIndexes();
    if (javaServer) await serverIndexes(unsafeDatabase(client));
    let cpu = cpuMicros();
    const seeded = await seed(data, {
      tenants,
      usersPerTenant: 1000,
      conversations,
      messagesPerConversation: perConversation,
      zipf: 1.1,
      seed: 1,
      replyRatio,
      onProgress: (progress) => {
        if (progress.phase === 'messages' && progress.documents % 100_000 < 1000)
          process.stdout.write(`  seed ${format(progress.documents)}\r`);
      },
    });
    const seedCpu = cpuMicros() - cpu;
    const seedDocuments = seeded.users + seeded.conversations + seeded.messages;
    // Each conversation's newest message goes through create in the last phase.
    const bulkMessages = seeded.messages - seeded.replies - seeded.conversations;
    console.log(
      `  phases: ${Object.entries(seeded.phases)
        .map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`)
        .join(', ')}; batched message inserts ${format(bulkMessages / (seeded.phases.messages / 1000))} messages/s`,
    );
    console.log(
      `seed(): ${format(seeded.messages)} messages (${format(seeded.replies)} replies), ${format(seedDocuments)} documents in ${(seeded.durationMS / 1000).toFixed(1)} s = ${format(seeded.documentsPerSecond)} documents/s, ${format(seeded.messages / (seeded.durationMS / 1000))} messages/s; client CPU ${(seedCpu / seedDocuments).toFixed(1)} µs/document`,
    );

    // ---- migration: every message from schema_version 1 to 2, per tenant, checkpointed batches
    // Inside the package, so the migration file resolves @caas-db/core like any migration would.
    const scratch = fileURLToPath(new URL('./.tmp/', import.meta.url));
    mkdirSync(scratch, { recursive: true });
    const folder = mkdtempSync(join(scratch, 'migrations-'));
    writeFileSync(
      join(folder, '001-messages-v2.mjs'),
      `export default {
  scope: 'tenant',
  async up(context) {
    const { Repository, messagesDefinition } = await import('@caas-db/core');
    const v2 = { ...messagesDefinition, schemaVersion: 2, upgrades: { 1: (m) => ({ ...m, search_key_version: m.search_key_version ?? 1 }) } };
    await context.upgradeDocuments(context.data.repository(v2, Repository, context.tenant), { batchSize: ${batchSize} });
  },
};
`,
    );
    let batches = 0;
    const migrator = createMigrator({
      data,
      directory: folder,
      tenants: async () => seeded.tenants,
      runBy: 'bench',
      onEvent: (event) => {
        if (event.type !== 'progress') return;
        batches += 1;
        if (event.batches % 100 === 0) process.stdout.write(`  migrate ${event.tenant} ${format(event.documents)}\r`);
      },
    });
    cpu = cpuMicros();
    let started = performance.now();
    await migrator.up();
    const migrateSeconds = (performance.now() - started) / 1000;
    const migrateCpu = cpuMicros() - cpu;
    const upgraded = await unsafeDatabase(client).collection('messages').countDocuments({ schema_version: 2 });
    console.log(
      `migrate up (upgradeDocuments): ${format(upgraded)} of ${format(seeded.messages)} messages upgraded in ${batches} batches, ${migrateSeconds.toFixed(1)} s = ${format(upgraded / migrateSeconds)} documents/s; client CPU ${(migrateCpu / upgraded).toFixed(1)} µs/document`,
    );
    rmSync(scratch, { recursive: true, force: true });
    // The raw side runs on a server of its own, fresh as the library side's was.
    await data.admin.dropDatabase();
    await client.close();
    if (server.backend !== 'external') {
      await server.stop();
      server = await startMongo();
    }

    // ---- the same number of equivalent message documents through the raw driver
    const rawClient = createDataClient({ uri: server.uri, database: 'bench_raw', pool: { maxSize: 20 } });
    await createDataLayer({ client: rawClient }).syncIndexes();
    if (javaServer) await serverIndexes(unsafeDatabase(rawClient));
    const raw = unsafeDatabase(rawClient).collection('messages');
    const tenantIds = seeded.tenants;
    cpu = cpuMicros();
    started = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    const conversationIds = Array.from({ length: conversations }, () => new ObjectId());
    const sender = new ObjectId();
    for (let offset = 0; offset < seeded.messages; offset += 1000) {
      const now = new Date();
      const tenant = tenantIds[(offset / 1000) % tenantIds.length] as string;
      const batch: Document[] = Array.from({ length: Math.min(1000, seeded.messages - offset) }, (_, index) => ({
        _id: new ObjectId(),
        tenant_id: tenant,
        conversation_id: conversationIds[(offset + index) % conversations],
        sender_id: sender,
        content: { type: 'text', encrypted_data: `ct:${'a'.repeat(48)}`, encrypted_preview: `pv:${offset + index}:abcdefabcdef` },
        status: 'sent',
        schema_version: 1,
        created_at: now,
        updated_at: now,
      }));
      const sending: Promise<unknown> = raw.insertMany(batch, { ordered: false }).finally(() => inFlight.delete(sending));
      inFlight.add(sending);
      if (inFlight.size >= 3) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const rawSeconds = (performance.now() - started) / 1000;
    const rawCpu = cpuMicros() - cpu;
    console.log(
      `raw insertMany: ${format(seeded.messages)} messages in ${rawSeconds.toFixed(1)} s = ${format(seeded.messages / rawSeconds)} documents/s; client CPU ${(rawCpu / seeded.messages).toFixed(1)} µs/document`,
    );

    // The same work as upgradeDocuments, per tenant: an _id-range batch read, then one unordered
    // bulkWrite of $sets guarded by { _id, tenant_id, schema_version } (the library's filter).
    cpu = cpuMicros();
    started = performance.now();
    let rawUpgraded = 0;
    let rawBatches = 0;
    for (const tenant of tenantIds) {
      let after: ObjectId | undefined;
      for (;;) {
        const rows = await raw
          .find(after ? { tenant_id: tenant, _id: { $gt: after } } : { tenant_id: tenant })
          .sort({ _id: 1 })
          .limit(batchSize)
          .toArray();
        rawBatches += 1;
        const outdated = rows.filter((row) => row.schema_version < 2);
        if (outdated.length > 0) {
          const result = await raw.bulkWrite(
            outdated.map((row) => ({
              updateOne: {
                filter: { tenant_id: tenant, _id: row._id, schema_version: 1 },
                update: { $set: { search_key_version: 1, schema_version: 2 } },
              },
            })),
            { ordered: false },
          );
          rawUpgraded += result.modifiedCount;
        }
        if (rows.length < batchSize) break;
        after = rows.at(-1)?._id as ObjectId;
      }
    }
    const rawMigrateSeconds = (performance.now() - started) / 1000;
    const rawMigrateCpu = cpuMicros() - cpu;
    console.log(
      `raw scan + bulkWrite: ${format(rawUpgraded)} messages upgraded in ${rawBatches} batches, ${rawMigrateSeconds.toFixed(1)} s = ${format(rawUpgraded / rawMigrateSeconds)} documents/s; client CPU ${(rawMigrateCpu / rawUpgraded).toFixed(1)} µs/document`,
    );
    console.log(
      `load average ${loadavg()
        .map((load) => load.toFixed(1))
        .join(' ')} at the end; mongo-java-server ${MONGO_JAVA_SERVER_VERSION}`,
    );
    await rawClient.close();
  } finally {
    await server.stop();
  }
}

await main();
