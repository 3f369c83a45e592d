/**
 * Seed and migration throughput for 1,000,000 messages (pnpm bench:seed-migrate), each side by
 * side with the raw driver doing the same work in the same run on the same server:
 *
 * - seed: `seed()` through the repositories (validated, batched createMany, replies through
 *   messages.create, last_message per conversation) vs raw `insertMany` of equivalent documents;
 * - migration: `migrate up` of a tenant migration that upgrades every message from
 *   schema_version 1 to 2 with `upgradeDocuments` (batches of 1000, checkpoint per batch) vs a raw
 *   `_id`-range scan + `bulkWrite` of the same `$set`s.
 *
 * CAAS_DB_BENCH_MESSAGES sets the size (default 1,000,000). MONGODB_URI points it at a real server.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDataClient, createDataLayer, type Document, ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { MONGO_JAVA_SERVER_VERSION, seed, startMongo } from '@caas-db/testing';
import { createMigrator } from '../src/index.js';

const messages = Number(process.env.CAAS_DB_BENCH_MESSAGES ?? 1_000_000);
const tenants = 2;
// 100 conversations of 500 messages each per tenant at a million: history-heavy, and few enough
// that the per-conversation phase (last_message) stays small next to the bulk inserts.
const conversations = Number(process.env.CAAS_DB_BENCH_CONVERSATIONS ?? 100);
const replyRatio = Number(process.env.CAAS_DB_BENCH_REPLY_RATIO ?? 0.002);
const perConversation = messages / tenants / conversations;

const format = (n: number) => Math.round(n).toLocaleString('en-US');
const cpuMicros = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

async function main() {
  const server = await startMongo();
  console.log(`server: ${server.description}; ${cpus().length} cores; load average ${loadavg()[0]?.toFixed(1)} at start`);
  try {
    // ---- seed through the repositories
    const client = createDataClient({ uri: server.uri, database: 'bench_seed', pool: { maxSize: 20 } });
    const data = createDataLayer({ client });
    await data.syncIndexes();
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
    const bulkMessages = seeded.messages - seeded.replies;
    console.log(
      `  phases: ${Object.entries(seeded.phases)
        .map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`)
        .join(', ')}; batched message inserts ${format(bulkMessages / (seeded.phases.messages / 1000))} messages/s`,
    );
    console.log(
      `seed(): ${format(seeded.messages)} messages (${format(seeded.replies)} replies), ${format(seedDocuments)} documents in ${(seeded.durationMS / 1000).toFixed(1)} s = ${format(seeded.documentsPerSecond)} documents/s, ${format(seeded.messages / (seeded.durationMS / 1000))} messages/s; client CPU ${(seedCpu / seedDocuments).toFixed(1)} µs/document`,
    );

    // ---- the same number of equivalent message documents through the raw driver
    const rawClient = createDataClient({ uri: server.uri, database: 'bench_raw', pool: { maxSize: 20 } });
    await createDataLayer({ client: rawClient }).syncIndexes();
    const raw = unsafeDatabase(rawClient).collection('messages');
    cpu = cpuMicros();
    let started = performance.now();
    const inFlight = new Set<Promise<unknown>>();
    const conversationIds = Array.from({ length: conversations }, () => new ObjectId());
    const sender = new ObjectId();
    for (let offset = 0; offset < seeded.messages; offset += 1000) {
      const now = new Date();
      const batch: Document[] = Array.from({ length: Math.min(1000, seeded.messages - offset) }, (_, index) => ({
        _id: new ObjectId(),
        tenant_id: `seed-000${1 + ((offset / 1000) % tenants)}`,
        conversation_id: conversationIds[(offset + index) % conversations],
        sender_id: sender,
        content: { type: 'text', encrypted_data: `ct:${'a'.repeat(48)}`, encrypted_preview: `pv:${offset + index}:abcdefabcdef` },
        reactions: [],
        read_by: [],
        status: 'sent',
        schema_version: 1,
        created_at: now,
        updated_at: now,
        deleted_at: null,
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
    await context.upgradeDocuments(context.data.repository(v2, Repository, context.tenant), { batchSize: 1000 });
  },
};
`,
    );
    const migrator = createMigrator({ data, directory: folder, tenants: async () => seeded.tenants, runBy: 'bench' });
    cpu = cpuMicros();
    started = performance.now();
    await migrator.up();
    const migrateSeconds = (performance.now() - started) / 1000;
    const migrateCpu = cpuMicros() - cpu;
    const upgraded = await unsafeDatabase(client).collection('messages').countDocuments({ schema_version: 2 });
    console.log(
      `migrate up (upgradeDocuments): ${format(upgraded)} messages upgraded in ${migrateSeconds.toFixed(1)} s = ${format(upgraded / migrateSeconds)} documents/s; client CPU ${(migrateCpu / upgraded).toFixed(1)} µs/document`,
    );
    rmSync(scratch, { recursive: true, force: true });

    cpu = cpuMicros();
    started = performance.now();
    let after: ObjectId | undefined;
    let rawUpgraded = 0;
    for (;;) {
      const rows = await raw
        .find(after ? { _id: { $gt: after } } : {})
        .sort({ _id: 1 })
        .limit(1000)
        .toArray();
      const outdated = rows.filter((row) => row.schema_version < 2);
      if (outdated.length > 0) {
        const result = await raw.bulkWrite(
          outdated.map((row) => ({
            updateOne: { filter: { _id: row._id, schema_version: 1 }, update: { $set: { search_key_version: 1, schema_version: 2 } } },
          })),
          { ordered: false },
        );
        rawUpgraded += result.modifiedCount;
      }
      if (rows.length < 1000) break;
      after = rows.at(-1)?._id as ObjectId;
    }
    const rawMigrateSeconds = (performance.now() - started) / 1000;
    const rawMigrateCpu = cpuMicros() - cpu;
    console.log(
      `raw scan + bulkWrite: ${format(rawUpgraded)} messages upgraded in ${rawMigrateSeconds.toFixed(1)} s = ${format(rawUpgraded / rawMigrateSeconds)} documents/s; client CPU ${(rawMigrateCpu / rawUpgraded).toFixed(1)} µs/document`,
    );
    console.log(`load average ${loadavg()[0]?.toFixed(1)} at the end; mongo-java-server ${MONGO_JAVA_SERVER_VERSION}`);
    await Promise.all([client.close(), rawClient.close()]);
  } finally {
    await server.stop();
  }
}

await main();
