import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalKeyProvider, filesystemTarget } from '@caas-db/archive';
import { createDataLayer } from '@caas-db/core';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBackupService } from '../src/index.js';
import { populateTenant, snapshotTenant } from './support/tenant-data.js';

const client = createTestClient();
const data = createDataLayer({ client });
const keyProvider = createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 9) }, current: 'k1' });
const child = fileURLToPath(new URL('./support/restore-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-restore-crash-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Starts a restore in a child process and SIGKILLs it once it has restored 10 chunks of messages. */
async function restoreAndKill(args: string[]): Promise<void> {
  const restoring = spawn(process.execPath, ['--import', 'tsx', child, testEnvironment().mongo.uri, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let progress = 0;
  let output = '';
  restoring.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    progress = output.split('\n').filter((line) => line.startsWith('progress messages')).length;
  });
  let errors = '';
  restoring.stderr.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => restoring.on('exit', (code) => resolve(code)));
  await waitFor(() => progress >= 10 || restoring.exitCode !== null, { what: 'the child restoring messages', timeoutMS: 60_000 });
  expect(errors).toBe('');
  expect(output).not.toContain('done');
  restoring.kill('SIGKILL');
  await exited;
}

/** A tenant with enough messages for many small chunks, and its backup. */
async function tenantWithBackup(tenant: string) {
  const population = await populateTenant(data, tenant, 3);
  const conversation = population.conversations[1];
  const [alice, bob] = population.users;
  const messages = data.forTenant(tenant).messages;
  for (let batch = 0; batch < 2; batch += 1)
    await messages.createMany(
      Array.from({ length: 200 }, (_, index) => ({
        conversation_id: conversation,
        sender_id: index % 2 ? bob : alice,
        content: { type: 'text' as const, encrypted_data: `bulk-${batch}-${index}-${'x'.repeat(200)}` },
      })) as never,
    );
  const source = await snapshotTenant(client, tenant);
  const backups = createBackupService({ data, target: filesystemTarget(directory, { fsync: false }), keyProvider, chunkBytes: 2048 });
  const { name, manifest } = await backups.create({ tenant, label: 'crash' });
  expect(manifest.chunks.length).toBeGreaterThan(40);
  return { source, backups, name };
}

it('a restore killed mid-way (its process SIGKILLed) and run again ends identical to the source', async () => {
  const { source, backups, name } = await tenantWithBackup('acme');
  const target = createTestClient({ database: `${testDatabaseName()}_target` });
  await restoreAndKill([target.databaseName, directory, name]);

  const partial = await snapshotTenant(target, 'acme');
  expect(partial.messages?.length).toBeGreaterThan(0);
  expect(partial.messages?.length).toBeLessThan(source.messages?.length ?? 0);

  const resumed = await backups.restore({ name, data: createDataLayer({ client: target }) });
  expect(resumed.resumed).toBe(true);
  expect(await snapshotTenant(target, 'acme')).toEqual(source);
  // And once more, from scratch (the checkpoint is gone): still identical.
  const again = await backups.restore({ name, data: createDataLayer({ client: target }), preflight: false });
  expect(again.resumed).toBe(false);
  expect(await snapshotTenant(target, 'acme')).toEqual(source);
}, 180_000);

it('a restore under another tenant id with remapped ids, into the source’s own collections, killed mid-way and run again ends identical, the source untouched', async () => {
  const { source, backups, name } = await tenantWithBackup('hooli');
  await restoreAndKill([client.databaseName, directory, name, 'hooli-copy', 'remap']);
  const partial = await snapshotTenant(client, 'hooli-copy');
  expect(partial.messages?.length).toBeGreaterThan(0);
  expect(partial.messages?.length).toBeLessThan(source.messages?.length ?? 0);

  const resumed = await backups.restore({ name, tenant: 'hooli-copy', ids: 'remap' });
  expect(resumed.resumed).toBe(true);
  const copy = await snapshotTenant(client, 'hooli-copy');
  const again = await backups.restore({ name, tenant: 'hooli-copy', ids: 'remap', preflight: false });
  expect(again.resumed).toBe(false);
  expect(await snapshotTenant(client, 'hooli-copy')).toEqual(copy);
  expect(await snapshotTenant(client, 'hooli')).toEqual(source);
  for (const collection of Object.keys(source)) expect(copy[collection]?.length, collection).toBe(source[collection]?.length);
}, 180_000);
