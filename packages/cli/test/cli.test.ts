import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDataLayer, messagesDefinition, type ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { MigrationLock } from '@caas-db/migrate';
import { createTenancy } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositories } from './fixtures/handshake.js';

// The built binary, as a user runs it (`pnpm test` builds every package first).
const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const migrations = fileURLToPath(new URL('./fixtures/migrations', import.meta.url));
const client = createTestClient();
const data = createDataLayer({ client });
const scratch = mkdtempSync(join(tmpdir(), 'caas-db-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI against this file's database; `--uri` is passed, MONGODB_URI removed. */
function start(args: string[], options: { uri?: boolean } = {}): { child: ChildProcess; done: Promise<Run>; stderr: () => string } {
  const env = { ...process.env };
  delete env.MONGODB_URI;
  delete env.CAAS_DB_CONFIG;
  const connection = options.uri === false ? [] : ['--uri', testEnvironment().mongo.uri, '--database', testDatabaseName()];
  const child = spawn(process.execPath, [bin, ...connection, ...args], { env, cwd: scratch, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

const cli = (...args: string[]) => start(args).done;
const json = (run: Run): unknown => {
  if (!run.stdout.trim() || run.code !== 0) throw new Error(`exit code ${run.code}: ${run.stdout} ${run.stderr}`);
  return JSON.parse(run.stdout);
};

beforeAll(() => {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run pnpm build (pnpm test does) first`);
});

// Each run starts a Node process: generous bounds for a loaded CI machine (none is a wait).
describe('caas-db (the built binary)', { timeout: 120_000 }, () => {
  it('prints help and refuses bad usage with exit code 2', async () => {
    const help = await start(['--help'], { uri: false }).done;
    expect(help.code).toBe(0);
    for (const command of ['migrate', 'indexes', 'seed', 'verify', 'tenant']) expect(help.stdout).toContain(command);
    expect((await start(['frobnicate'], { uri: false }).done).code).toBe(2);
    const noUri = await start(['tenant', 'list'], { uri: false }).done;
    expect(noUri.code).toBe(2);
    expect(noUri.stderr).toMatch(/uri.*MONGODB_URI/);
  });

  it('provisions, lists, suspends and activates tenants, and syncs and diffs indexes', async () => {
    const provisioned = await cli('--json', 'tenant', 'provision', 'acme', '--name', 'Acme', '--region', 'eu-west-1', '--plan', 'pro');
    expect(provisioned.code).toBe(0);
    expect(json(provisioned)).toMatchObject({ tenant: 'acme', created: true });
    expect(json(await cli('--json', 'tenant', 'provision', 'acme', '--name', 'Acme', '--region', 'eu-west-1'))).toMatchObject({
      created: false,
    });
    expect((await cli('tenant', 'suspend', 'acme', '--reason', 'unpaid invoice')).code).toBe(0);
    expect(json(await cli('--json', 'tenant', 'list', '--status', 'suspended'))).toEqual([
      { tenant: 'acme', name: 'Acme', plan: 'pro', status: 'suspended' },
    ]);

    expect((await cli('indexes', 'sync')).code).toBe(0);
    const diff = await cli('indexes', 'diff');
    expect(diff.stdout).toContain('Indexes match their declarations.');
    expect(diff.code).toBe(0);
  });

  it('indexes diff under the database strategy also checks each active tenant’s database', async () => {
    const strategy = ['--strategy', 'database'];
    expect((await cli(...strategy, 'tenant', 'provision', 'beta', '--name', 'Beta', '--region', 'eu-west-1')).code).toBe(0);
    expect((await cli(...strategy, 'indexes', 'sync')).code).toBe(0);
    const clean = await cli(...strategy, 'indexes', 'diff');
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);

    const tenancy = createTenancy({ audit: 'off', strategy: { default: 'database' } });
    createDataLayer({ client, plugins: [tenancy] });
    const database = await tenancy.databaseOf('beta');
    expect(database).not.toBe(testDatabaseName());
    const dropped = messagesDefinition.indexes[0]?.name as string;
    await unsafeDatabase(client, database).collection('messages').dropIndex(dropped);
    const drift = await cli(...strategy, '--json', 'indexes', 'diff');
    expect(drift.code).toBe(3);
    expect(JSON.parse(drift.stdout)).toContainEqual(
      expect.objectContaining({
        collection: 'messages',
        tenant: 'beta',
        drift: expect.objectContaining({ missing: [expect.objectContaining({ name: dropped })] }),
      }),
    );
    expect((await cli(...strategy, 'indexes', 'diff')).stdout).toContain(`beta: messages: missing ${dropped}`);
    await unsafeDatabase(client, database).dropDatabase();
    expect((await cli('tenant', 'suspend', 'beta', '--reason', 'test done')).code).toBe(0);
  });

  it('seeds, verifies (exit code 3 on drift) and repairs', async () => {
    const seeded = await cli(
      '--json',
      'seed',
      '--tenants',
      '1',
      '--users-per-tenant',
      '6',
      '--conversations',
      '4',
      '--messages-per-conversation',
      '5',
      '--seed',
      '9',
    );
    expect(seeded.code).toBe(0);
    expect(json(seeded)).toMatchObject({ tenants: ['seed-0001'], users: 6, conversations: 4, messages: 20 });
    expect(seeded.stderr).toMatch(/seed: \d+/);
    const clean = await cli('--json', 'verify', '--tenant', 'seed-0001');
    expect(clean.code).toBe(0);
    expect(json(clean)).toMatchObject([{ tenant: 'seed-0001', drift: [] }]);

    const [conversation] = await unsafeDatabase(client).collection('conversations').find({ tenant_id: 'seed-0001' }).limit(1).toArray();
    await unsafeDatabase(client)
      .collection('conversations')
      .updateOne({ _id: conversation?._id as ObjectId }, { $unset: { last_message: '' } });
    const drifted = await cli('verify', '--tenant', 'seed-0001');
    expect(drifted.code).toBe(3);
    expect(drifted.stdout).toContain('last_message');
    const repaired = await cli('verify', '--repair', '--tenant', 'seed-0001');
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain('repaired');
  });

  it('creates a migration file', async () => {
    const folder = join(scratch, 'new-migrations');
    const created = await cli('--json', '--migrations', folder, 'migrate', 'create', 'add-priority', '--scope', 'tenant');
    expect(created.code).toBe(0);
    const [file] = readdirSync(folder);
    expect(file).toMatch(/^\d{14}-add-priority\.ts$/);
  });

  it('stops a migration at the next batch boundary on Ctrl-C, says how to resume, and resumes without repeating a batch', async () => {
    const { items, signals } = repositories(data);
    await items.createMany(Array.from({ length: 23 }, (_, n) => ({ n })));

    const running = start(['--migrations', migrations, 'migrate', 'up']);
    // The migration is inside batch 2: press Ctrl-C, then let the batch finish.
    await waitFor(async () => (await signals.count({ name: 'waiting' })) === 1, { timeoutMS: 30_000 });
    running.child.kill('SIGINT');
    await waitFor(() => running.stderr().includes('Stopping at the next batch boundary'), { timeoutMS: 30_000 });
    await signals.create({ name: 'go' });
    const stopped = await running.done;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain('Resume with: caas-db migrate up');
    expect(await signals.count({ name: 'batch' })).toBe(2);

    const status = json(await cli('--json', '--migrations', migrations, 'migrate', 'status')) as Array<Record<string, unknown>>;
    expect(status).toMatchObject([
      { id: '001-touch-items', state: 'interrupted', checkpoints: { touch: { batches: 2, documents: 10, done: false } } },
    ]);

    const resumed = await cli('--migrations', migrations, '--run-by', 'ci-deploy', 'migrate', 'up');
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain('001-touch-items (resuming)');
    // Batches 3, 4, 5 ran once each after the two before the interrupt: 23 items, 5 per batch.
    expect(await signals.count({ name: 'batch' })).toBe(5);
    expect((await items.findMany({}, { limit: 100 })).items.map((item) => item.touched)).toEqual(Array(23).fill(1));
    const applied = json(await cli('--json', '--migrations', migrations, 'migrate', 'status')) as Array<Record<string, unknown>>;
    expect(applied).toMatchObject([
      { state: 'applied', ranBy: 'ci-deploy', checkpoints: { touch: { batches: 5, documents: 23, done: true } } },
    ]);
  }, 180_000);

  it('migrate --wait: times out with exit code 4 while another runner holds the lock, or waits for it and runs', async () => {
    const holder = new MigrationLock(data, { name: 'migrations', holder: 'other-deploy', leaseMS: 600_000 });
    await holder.prepare();
    await holder.acquire();
    const refused = await cli('--migrations', migrations, 'migrate', 'up');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('--wait <ms>');
    const timedOut = await cli('--migrations', migrations, 'migrate', 'up', '--wait', '1');
    expect(timedOut.code).toBe(4);
    expect(timedOut.stderr).toContain('E_MIGRATION_LOCK_TIMEOUT');
    expect((await cli('--migrations', migrations, 'migrate', 'up', '--wait', 'soon')).code).toBe(2);

    const waiting = start(['--migrations', migrations, 'migrate', 'down', '--wait', '600000']);
    await waitFor(() => waiting.stderr().includes('Waiting for the migration lock held by other-deploy'), { timeoutMS: 30_000 });
    await holder.release();
    const ran = await waiting.done;
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain('Rolled back: 001-touch-items');
  });
});
