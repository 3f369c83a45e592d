import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filesystemTarget, listArchives } from '@caas-db/archive';
import { main } from '@caas-db/cli';
import { createDataLayer } from '@caas-db/core';
import { createTestClient, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { populateTenant, snapshotTenant } from './support/tenant-data.js';

const client = createTestClient();
const data = createDataLayer({ client });
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-backup-cli-'));
  vi.stubEnv('CAAS_DB_BACKUP_KEYS', JSON.stringify({ k1: Buffer.alloc(32, 4).toString('base64') }));
  vi.stubEnv('CAAS_DB_BACKUP_KEY_ID', 'k1');
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await rm(directory, { recursive: true, force: true });
});

it('caas-db backup create|list|verify, restore --conversation, restore --ids remap and pitr restore run end to end', async () => {
  await data.clients.create({ tenant_id: 'acme', name: 'Acme', region: 'eu-west-1' });
  const population = await populateTenant(data, 'acme');
  const source = await snapshotTenant(client, 'acme');
  const cli = (...args: string[]) =>
    main([
      'node',
      'caas-db',
      ...args,
      '--dir',
      directory,
      '--uri',
      testEnvironment().mongo.uri,
      '--database',
      client.databaseName,
      '--json',
    ]);
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const errors = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const created = await cli('backup', 'create', '--tenant', 'acme');
    expect(created, errors.mock.calls.map((call) => String(call[0])).join('')).toBe(0);
    const [backup] = await listArchives(filesystemTarget(directory), 'backups/acme/');
    expect(backup?.documents).toBe(Object.values(source).reduce((sum, lines) => sum + lines.length, 0));
    expect(await cli('backup', 'list', '--tenant', 'acme')).toBe(0);
    expect(await cli('backup', 'verify', backup?.name as string)).toBe(0);
    expect(await cli('restore', backup?.name as string, '--conversation', String(population.conversations[0]))).toBe(0);
    expect(await snapshotTenant(client, 'acme')).toEqual(source);
    expect(await cli('restore', backup?.name as string, '--mode', 'sideways')).toBe(2);
    expect(await cli('restore', backup?.name as string, '--tenant', 'acme-twin', '--ids', 'sideways')).toBe(2);
    // A copy beside its source in the same shared collections: every id remapped.
    await data.clients.create({ tenant_id: 'acme-twin', name: 'Acme twin', region: 'eu-west-1' });
    const remapped = await cli('restore', backup?.name as string, '--tenant', 'acme-twin', '--ids', 'remap');
    expect(remapped, errors.mock.calls.map((call) => String(call[0])).join('')).toBe(0);
    const twin = await snapshotTenant(client, 'acme-twin');
    for (const [collection, lines] of Object.entries(source)) expect(twin[collection]?.length, collection).toBe(lines.length);
    expect(await snapshotTenant(client, 'acme')).toEqual(source);
    // --ids remap without --into would restore the live tenant in place: refused as a usage error.
    expect(await cli('pitr', 'restore', '--tenant', 'acme', '--to', new Date().toISOString(), '--ids', 'remap')).toBe(2);
    // No journal ran: point-in-time recovery refuses (nothing written).
    expect(await cli('pitr', 'restore', '--tenant', 'acme', '--to', new Date(Date.now() + 60_000).toISOString())).not.toBe(0);
  } finally {
    write.mockRestore();
    errors.mockRestore();
  }
  expect(await snapshotTenant(client, 'acme')).toEqual(source);
});
