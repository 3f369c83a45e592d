/**
 * Backup and recovery on the server at hand (the embedded test server unless MONGODB_URI is set):
 * a tenant of MESSAGES messages (default 1,000,000) backed up and restored through @caas-db/backup,
 * each run in its own process so its peak RSS is its own; beside the raw driver in the same run
 * (a cursor dump to gzip'd EJSON, and insertMany batches of 1,000); then the journal's lag behind a
 * write load (RPO) and the time to restore the tenant (RTO).
 * Run: pnpm bench:backup   (MESSAGES=100000 for a quick run; PAGE_SIZE sets the service's pageSize)
 *
 * PAGE_SIZE defaults to 10,000: mongo-java-server answers each keyset page (`{ tenant_id, _id: { $gt } }`
 * sorted by `_id`) by scanning and sorting the whole collection, so a backup or a verification scan
 * costs (documents / pageSize) collection scans there; on MongoDB each page is an index range scan.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { createLocalKeyProvider, filesystemTarget } from '../packages/archive/src/index.js';
import { createBackupService } from '../packages/backup/src/index.js';
import { BSON, createDataClient, createDataLayer, ObjectId } from '../packages/core/src/index.js';
import { startMongo } from '../packages/testing/src/index.js';

const self = fileURLToPath(import.meta.url);
const keyProvider = createLocalKeyProvider({ keys: { bench: Buffer.alloc(32, 1) }, current: 'bench' });
const out = (line: string) => process.stdout.write(`${line}\n`);
const mb = (bytes: number) => bytes / 1024 / 1024;
const PAGE_SIZE = Number(process.env.PAGE_SIZE ?? 10_000);

interface ChildResult {
  durationMS: number;
  documents: number;
  plainBytes: number;
  storedBytes: number;
  maxRssMB: number;
  name?: string;
}

/** Child modes: one measured operation per process. */
async function child(mode: string, uri: string, database: string, directory: string, argument: string): Promise<void> {
  const client = createDataClient({ uri, database });
  const data = createDataLayer({ client });
  const service = createBackupService({
    data,
    target: filesystemTarget(directory, { fsync: false }),
    keyProvider,
    pageSize: PAGE_SIZE,
  });
  const started = performance.now();
  let result: Omit<ChildResult, 'maxRssMB'>;
  if (mode === 'backup') {
    const backup = await service.create({ tenant: argument, consistency: 'change-stream-catch-up' });
    result = {
      durationMS: performance.now() - started,
      documents: backup.documents,
      plainBytes: backup.plainBytes,
      storedBytes: backup.storedBytes,
      name: backup.name,
    };
  } else if (mode === 'raw-dump') {
    // The raw driver: one cursor, canonical EJSON lines, gzip to a file (no encryption, no checksums).
    const { unsafeDatabase } = await import('../packages/core/src/unsafe.js');
    const gzip = createGzip();
    const file = createWriteStream(join(directory, `raw-${argument}.ejson.gz`));
    gzip.pipe(file);
    let documents = 0;
    let plainBytes = 0;
    for await (const document of unsafeDatabase(client)
      .collection('messages')
      .find({ tenant_id: argument }, { batchSize: 1000, promoteValues: false })) {
      const line = `${BSON.EJSON.stringify(document, { relaxed: false })}\n`;
      plainBytes += line.length;
      documents += 1;
      if (!gzip.write(line)) await new Promise((resolve) => gzip.once('drain', resolve));
    }
    gzip.end();
    await new Promise<void>((resolve) => file.on('close', () => resolve()));
    result = { durationMS: performance.now() - started, documents, plainBytes, storedBytes: 0 };
  } else {
    const restore = await service.restore({ name: argument, verify: mode === 'restore-verified', preflight: mode === 'restore-verified' });
    const documents = Object.values(restore.inserted).reduce((sum, count) => sum + count, 0);
    result = { durationMS: performance.now() - started, documents, plainBytes: 0, storedBytes: 0 };
  }
  await client.close();
  process.stdout.write(`${JSON.stringify({ ...result, maxRssMB: process.resourceUsage().maxRSS / 1024 })}\n`);
}

function runChild(mode: string, uri: string, database: string, directory: string, argument: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, ['--import', 'tsx', self, mode, uri, database, directory, argument], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    process_.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    process_.on('exit', (code) => {
      const line = output.trim().split('\n').at(-1) ?? '';
      if (code === 0) resolve(JSON.parse(line) as ChildResult);
      else reject(new Error(`${mode} exited with ${code}: ${output}`));
    });
  });
}

/** Runs `run` against a fresh server (or the external one, where `database` is dropped afterwards). */
async function onFreshServer<T>(database: string, run: (uri: string) => Promise<T>): Promise<T> {
  const server = await startMongo();
  try {
    return await run(server.uri);
  } finally {
    if (server.backend === 'external') {
      const { unsafeDatabase } = await import('../packages/core/src/unsafe.js');
      const client = createDataClient({ uri: server.uri, database });
      await unsafeDatabase(client)
        .dropDatabase()
        .catch(() => undefined);
      await client.close();
    }
    await server.stop();
  }
}

function message(tenant: string, conversation: ObjectId, sender: ObjectId, index: number, at: Date) {
  return {
    _id: new ObjectId(),
    tenant_id: tenant,
    conversation_id: conversation,
    sender_id: sender,
    content: { type: 'text', encrypted_data: Buffer.from(`ciphertext ${index} ${'x'.repeat(90)}`).toString('base64') },
    reactions: [],
    read_by: [],
    status: 'sent',
    thread: { reply_count: 0 },
    deleted_at: null,
    schema_version: 1,
    created_at: at,
    updated_at: at,
  };
}

async function main(): Promise<void> {
  const MESSAGES = Number(process.env.MESSAGES ?? 1_000_000);
  const SMALL = Math.max(1000, Math.floor(MESSAGES / 10));
  const mongo = await startMongo();
  const database = `bench_backup_${Date.now()}`;
  const directory = await mkdtemp(join(tmpdir(), 'caas-bench-backup-'));
  out(
    `machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GB), Node ${process.version}; server: ${mongo.description}; pageSize ${PAGE_SIZE}`,
  );
  const client = createDataClient({ uri: mongo.uri, database, monitoring: { wire: true } });
  const data = createDataLayer({ client });
  const { unsafeDatabase } = await import('../packages/core/src/unsafe.js');
  const db = unsafeDatabase(client);
  try {
    // Seed with the raw driver (insertMany of 1,000): the raw write baseline.
    const seed = async (tenant: string, count: number) => {
      // Conversations through the library (100 per tenant), so every document passes the model.
      const owner = new ObjectId();
      const conversations: ObjectId[] = [];
      for (let index = 0; index < 100; index += 1)
        conversations.push((await data.forTenant(tenant).conversations.createGroup({ type: 'group', ownerId: owner }))._id);
      const started = performance.now();
      for (let offset = 0; offset < count; offset += 1000) {
        const batch = [];
        for (let index = offset; index < Math.min(count, offset + 1000); index += 1)
          batch.push(
            message(tenant, conversations[index % 100] as ObjectId, conversations[(index + 1) % 100] as ObjectId, index, new Date()),
          );
        await db.collection('messages').insertMany(batch, { ordered: false });
      }
      return performance.now() - started;
    };
    const seedMS = await seed('big', MESSAGES);
    await seed('small', SMALL);
    await seed('other', 1000);
    await createBackupService({ data, target: filesystemTarget(directory), keyProvider }).syncIndexes('big');
    out(
      `seeded ${MESSAGES.toLocaleString('en')} messages of tenant big (+${SMALL.toLocaleString('en')} of small, 1,000 of other) with raw insertMany: ${(MESSAGES / (seedMS / 1000)).toFixed(0)} docs/s`,
    );

    const rows: string[] = [
      '| operation | documents | time | docs/s | MB/s (EJSON) | stored MB | peak RSS |',
      '|---|---|---|---|---|---|---|',
    ];
    const row = (label: string, result: ChildResult) =>
      rows.push(
        `| ${label} | ${result.documents.toLocaleString('en')} | ${(result.durationMS / 1000).toFixed(1)} s | ${(result.documents / (result.durationMS / 1000)).toFixed(0)} | ${result.plainBytes ? (mb(result.plainBytes) / (result.durationMS / 1000)).toFixed(1) : '-'} | ${result.storedBytes ? mb(result.storedBytes).toFixed(1) : '-'} | ${result.maxRssMB.toFixed(0)} MB |`,
      );
    const smallBackup = await runChild('backup', mongo.uri, database, directory, 'small');
    row(`backup (library), ${SMALL.toLocaleString('en')} messages`, smallBackup);
    const bigBackup = await runChild('backup', mongo.uri, database, directory, 'big');
    row(`backup (library), ${MESSAGES.toLocaleString('en')} messages`, bigBackup);
    row(
      `raw driver dump (cursor → EJSON → gzip), ${MESSAGES.toLocaleString('en')}`,
      await runChild('raw-dump', mongo.uri, database, directory, 'big'),
    );

    // RTO: the tenant restored into another server (disaster recovery into a new cluster), bare and
    // with preflight + verification, each on a fresh server: mongo-java-server keeps a deep copy of
    // every write in its oplog and scans that oplog on every change-stream read, so restores into
    // the source server would grow its heap past its default maximum and slow every later stream.
    const bare = await onFreshServer(`${database}_restore`, (uri) =>
      runChild('restore', uri, `${database}_restore`, directory, bigBackup.name as string),
    );
    // MB/s of a restore: the backup's EJSON bytes over the restore's time.
    row(`restore (library), ${MESSAGES.toLocaleString('en')}: bare (no preflight, no verification)`, {
      ...bare,
      plainBytes: bigBackup.plainBytes,
    });
    const verified = await onFreshServer(`${database}_verified`, (uri) =>
      runChild('restore-verified', uri, `${database}_verified`, directory, bigBackup.name as string),
    );
    row(`restore (library), ${MESSAGES.toLocaleString('en')}: preflight + verification (default)`, {
      ...verified,
      plainBytes: bigBackup.plainBytes,
    });
    rows.push(
      `| raw driver insertMany (seeding), ${MESSAGES.toLocaleString('en')} | ${MESSAGES.toLocaleString('en')} | ${(seedMS / 1000).toFixed(1)} s | ${(MESSAGES / (seedMS / 1000)).toFixed(0)} | - | - | - |`,
    );
    for (const line of rows) out(line);

    // RPO: the journal's lag behind a write load through the library. The tenant has a database
    // of its own (as under database-per-tenant): in shared collections a journal needs
    // change-stream pre-images to see its deletes, which this server does not keep.
    // A fresh server too (its oplog holds only this load, as a real server's indexed oplog would
    // cost the same whatever its size).
    const rpoDatabase = `${database}_rpo`;
    const rpoServer = await startMongo();
    const rpoClient = createDataClient({ uri: rpoServer.uri, database: rpoDatabase });
    const rpoData = createDataLayer({ client: rpoClient });
    const service = createBackupService({
      data: rpoData,
      target: filesystemTarget(directory, { fsync: true }),
      keyProvider,
      databaseOf: () => rpoDatabase,
    });
    const journal = service.journal('rpo', { flushIntervalMS: 200 });
    await journal.start();
    const events = rpoData.forTenant('rpo').events;
    const acked: number[] = [];
    const lags: number[] = [];
    let running = true;
    const sampler = (async () => {
      while (running || journal.received - journal.pending < acked.length) {
        const sealed = journal.received - journal.pending;
        if (sealed < acked.length) lags.push(performance.now() - (acked[sealed] as number));
        else lags.push(0);
        await new Promise((resolve) => setTimeout(resolve, 50));
        if (!running && lags.length > 10_000) break;
      }
    })();
    const loadMS = Number(process.env.RPO_SECONDS ?? 20) * 1000;
    const loadStarted = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (performance.now() - loadStarted < loadMS) {
          await events.create({ type: 'message.sent', occurred_at: new Date() });
          acked.push(performance.now());
        }
      }),
    );
    running = false;
    await sampler;
    await journal.stop();
    await unsafeDatabase(rpoClient).dropDatabase();
    await rpoClient.close();
    await rpoServer.stop();
    lags.sort((a, b) => a - b);
    const quantile = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] ?? 0;
    out(
      `RPO: ${acked.length.toLocaleString('en')} writes in ${(loadMS / 1000).toFixed(0)} s (${(acked.length / (loadMS / 1000)).toFixed(0)}/s, 32 concurrent events.create), journal sealing every 200 ms (fsync): lag of the oldest acknowledged write not yet in a sealed segment p50 ${quantile(0.5).toFixed(0)} ms, p99 ${quantile(0.99).toFixed(0)} ms, max ${quantile(1).toFixed(0)} ms; ${journal.segments} segments`,
    );
  } finally {
    await unsafeDatabase(client)
      .dropDatabase()
      .catch(() => undefined);
    await client.close();
    await mongo.stop();
    await rm(directory, { recursive: true, force: true });
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode) await child(mode, ...(rest as [string, string, string, string]));
else await main();
