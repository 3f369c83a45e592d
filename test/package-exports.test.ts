import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The built packages, loaded by name the way a user's service loads them. */
const entryPoints: Record<string, string[]> = {
  '@caas-db/core': ['createDataClient', 'CaasDbError', 'ValidationError', 'DuplicateKeyError', 'createDataLayer', 'TenancyViolationError'],
  '@caas-db/testing': ['startMongo', 'startRedis', 'startTcpProxy', 'TestServerError'],
  '@caas-db/core/unsafe': ['unsafeDatabase', 'unsafeDriver'],
  '@caas-db/tenancy': ['createTenancy', 'runWithTenant', 'currentTenant', 'QuotaExceededError'],
  '@caas-db/cache': ['createCache'],
  '@caas-db/search': ['createSearch', 'createAnalytics', 'createBlindIndex'],
  '@caas-db/opentelemetry': ['instrumentCaasDb'],
};

function exportsVia(kind: 'import' | 'require', specifier: string): string[] {
  const script =
    kind === 'import'
      ? `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m).filter((k) => k !== 'default' && k !== 'module.exports').sort()))`
      : `const m = require(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m).sort()))`;
  const args = kind === 'import' ? ['--input-type=module', '-e', script] : ['-e', script];
  return JSON.parse(execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' })) as string[];
}

describe('built packages', () => {
  it('were built (pnpm test builds them first)', () => {
    for (const name of ['core', 'tenancy', 'cache', 'search', 'testing', 'opentelemetry']) {
      for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
        expect(existsSync(`${root}packages/${name}/dist/${file}`), `${name}/dist/${file}`).toBe(true);
      }
    }
  });

  it.each(Object.entries(entryPoints))('%s loads from ESM and CommonJS with the same exports', (specifier, expected) => {
    const viaImport = exportsVia('import', specifier);
    const viaRequire = exportsVia('require', specifier);
    expect(viaImport).toEqual(viaRequire);
    expect(expected.length, 'each entry point names what it must export').toBeGreaterThan(0);
    for (const name of expected) expect(viaImport).toContain(name);
  });

  it.each(['@caas-db/testing/vitest', '@caas-db/testing/global-setup', '@caas-db/testing/reporter'])(
    '%s resolves for import and require (it loads only inside vitest)',
    (specifier) => {
      const resolveVia = (kind: 'import' | 'require') =>
        execFileSync(
          process.execPath,
          kind === 'import'
            ? ['--input-type=module', '-e', `console.log(import.meta.resolve(${JSON.stringify(specifier)}))`]
            : ['-e', `console.log(require.resolve(${JSON.stringify(specifier)}))`],
          { cwd: root, encoding: 'utf8' },
        ).trim();
      const viaImport = fileURLToPath(resolveVia('import'));
      const viaRequire = resolveVia('require');
      expect(viaImport).toMatch(/dist\/vitest\/[\w-]+\.js$/);
      expect(viaRequire).toMatch(/dist\/vitest\/[\w-]+\.cjs$/);
      expect(existsSync(viaImport) && existsSync(viaRequire)).toBe(true);
    },
  );

  it('@caas-db/core/unsafe reaches the driver of a client made by the other module format', () => {
    const script = `
      const { createDataClient } = await import('@caas-db/core');
      const { createRequire } = await import('node:module');
      const { unsafeDriver } = createRequire(process.cwd() + '/package.json')('@caas-db/core/unsafe');
      const client = createDataClient({ uri: 'mongodb://127.0.0.1:1', database: 'x' });
      console.log(typeof unsafeDriver(client).db, 'execute' in client, 'driver' in client);`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }).trim();
    expect(output).toBe('function false false');
  });
});
