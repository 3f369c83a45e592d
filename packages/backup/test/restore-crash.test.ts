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

it('a restore killed mid-way (its process SIGKILLed) and run again ends identical to the source', async () => {
  const population = await populateTenant(data, 'acme', 3);
  const conversation = population.conversations[1];
  const [alice, bob] = population.users;
  const messages = data.forTenant('acme').messages;
  for (let batch = 0; batch < 2; batch += 1)
    await messages.createMany(
      Array.from({ length: 200 }, (_, index) => ({
        conversation_id: conversation,
        sender_id: index % 2 ? bob : alice,
        content: { type: 'text' as const, encrypted_data: `bulk-${batch}-${index}-${'x'.repeat(200)}` },
      })) as never,
    );
  const source = await snapshotTenant(client, 'acme');
  const backups = createBackupService({ data, target: filesystemTarget(directory, { fsync: false }), keyProvider, chunkBytes: 2048 });
  const { name, manifest } = await backups.create({ tenant: 'acme', label: 'crash' });
  expect(manifest.chunks.length).toBeGreaterThan(40);

  const target = createTestClient({ database: `${testDatabaseName()}_target` });
  const restoring = spawn(process.execPath, ['--import', 'tsx', child, testEnvironment().mongo.uri, target.databaseName, directory, name], {
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
