import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startMemoryServer } from '../src/mongo/memory-server.js';

const saved = { cache: process.env.CAAS_DB_CACHE_DIR, download: process.env.CAAS_DB_MONGOD_DOWNLOAD };
let folder: string | undefined;

afterEach(() => {
  for (const [name, value] of [
    ['CAAS_DB_CACHE_DIR', saved.cache],
    ['CAAS_DB_MONGOD_DOWNLOAD', saved.download],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe('a remembered failed mongod download', () => {
  it('says why, and how to try again now', async (context) => {
    folder = mkdtempSync(join(tmpdir(), 'caas-db-mongod-'));
    process.env.CAAS_DB_CACHE_DIR = folder;
    delete process.env.CAAS_DB_MONGOD_DOWNLOAD;
    const marker = join(folder, 'mongod-download-failed.json');
    writeFileSync(marker, JSON.stringify({ at: Date.now(), reason: 'getaddrinfo ENOTFOUND' }));
    const result = await startMemoryServer(false);
    if (!('unavailable' in result)) {
      await result.stop();
      context.skip('a mongod binary is installed here: no download is attempted, nor remembered');
      return;
    }
    expect(result.unavailable).toContain('getaddrinfo ENOTFOUND');
    expect(result.unavailable).toContain('CAAS_DB_MONGOD_DOWNLOAD=1');
    expect(result.unavailable).toContain(marker);
  });
});
