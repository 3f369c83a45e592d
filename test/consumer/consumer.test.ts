import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * A service team's project, built from the packed tarballs as `npm install` would give them to it
 * (not from the workspace): the README's snippet in ESM, in CommonJS and in TypeScript with the
 * strictest flags under both module resolutions, a mixed-format service, and the lowest supported
 * peers. pnpm test builds the packages first; packing and installing take most of the time.
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const PACKAGES = ['core', 'tenancy', 'cache', 'search', 'testing'];
/** The lowest peer versions the packages declare (peerDependencies of @caas-db/core). */
const LOWEST = { mongodb: '7.0.0', zod: '4.0.0' };
const SETUP_MS = 240_000;
/** Each run writes to databases of its own (the same alice is created by every case). */
const RUN = Date.now().toString(36);

const workspaceVersion = (name: string) =>
  (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let work: string;
let app: string;
let lowest: string;
let tarballs: Record<string, string>;

async function pack(name: string, destination: string): Promise<string> {
  const before = new Set(readdirSync(destination));
  await run('pnpm', ['pack', '--pack-destination', destination], { cwd: join(root, 'packages', name) });
  const created = readdirSync(destination).find((file) => !before.has(file) && file.endsWith('.tgz'));
  if (!created) throw new Error(`pnpm pack made no tarball for ${name}`);
  return join(destination, created);
}

async function npmInstall(dir: string, dependencies: Record<string, string>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }, null, 2));
  // --ignore-scripts: mongodb-memory-server's postinstall would try to download a mongod.
  await run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: dir });
}

/** Runs a script of the consumer project against the test server, in a database of its own. */
async function runScript(dir: string, script: string, database: string): Promise<string> {
  const { stdout } = await run(process.execPath, [script], {
    cwd: dir,
    env: { ...process.env, MONGODB_URI: testEnvironment().mongo.uri, CAAS_DB_DATABASE: `${database}_${RUN}` },
  });
  return stdout;
}

/** The TypeScript block of the README that follows "## Quick start", pointed at the test server. */
function readmeSnippet(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('## Quick start')))?.[1];
  if (!block) throw new Error('README.md has no ```ts block after "## Quick start"');
  const pointed = block
    .replace("'mongodb://localhost:27017'", "process.env.MONGODB_URI ?? 'mongodb://localhost:27017'")
    .replace("database: 'caas'", "database: process.env.CAAS_DB_DATABASE ?? 'caas'");
  if (!pointed.includes('process.env.MONGODB_URI') || !pointed.includes('process.env.CAAS_DB_DATABASE')) {
    throw new Error('the README snippet no longer connects with a uri literal and database "caas": update this test');
  }
  // What the snippet did, printed after it ran to the end (its last line closes the client).
  return `${pointed}console.log(JSON.stringify({ alice: alice.profile.display_name, messages: page.items.length, own: typeof own }));\n`;
}

/** The snippet as CommonJS: requires for imports, the body in an async function. */
function asCommonJs(snippet: string): string {
  const body = snippet.replace(/^import \{([^}]+)\} from '([^']+)';$/gm, "const {$1} = require('$2');");
  const requires = body.match(/^const \{[^}]+\} = require\('[^']+'\);$/gm) ?? [];
  const rest = body.replace(/^const \{[^}]+\} = require\('[^']+'\);\n/gm, '');
  return `${requires.join('\n')}\n(async () => {\n${rest}})().catch((error) => {\n  console.error(error);\n  process.exitCode = 1;\n});\n`;
}

const EXPECTED_SNIPPET_OUTPUT = { alice: 'Alice', messages: 1, own: 'object' };
const lastLine = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as unknown;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'caas-db-consumer-'));
  const packed = join(work, 'tarballs');
  mkdirSync(packed);
  tarballs = {};
  // One at a time: each pack may run a stale package's build (prepack).
  for (const name of PACKAGES) tarballs[`@caas-db/${name}`] = `file:${await pack(name, packed)}`;
  app = join(work, 'app');
  lowest = join(work, 'lowest');
  const peers = { mongodb: workspaceVersion('mongodb'), zod: workspaceVersion('zod'), ioredis: workspaceVersion('ioredis') };
  await Promise.all([
    npmInstall(app, { ...tarballs, ...peers, '@types/node': workspaceVersion('@types/node') }),
    npmInstall(lowest, { '@caas-db/core': tarballs['@caas-db/core'] ?? '', ...LOWEST }),
  ]);
  const snippet = readmeSnippet();
  writeFileSync(join(app, 'readme.mjs'), snippet);
  writeFileSync(join(app, 'readme.cjs'), asCommonJs(snippet));
  writeFileSync(join(app, 'readme.ts'), snippet);
  for (const file of ['mixed.mjs', 'tsconfig.node16.json', 'tsconfig.bundler.json']) copyFileSync(join(fixtures, file), join(app, file));
  copyFileSync(join(fixtures, 'lowest.mjs'), join(lowest, 'lowest.mjs'));
}, SETUP_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a consumer project built from the packed tarballs', () => {
  it('installed the packages with their peers, not copies of their own', () => {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules/@caas-db/tenancy/package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.dependencies).not.toHaveProperty('@caas-db/core');
    expect(manifest.peerDependencies).toHaveProperty('@caas-db/core');
    // One driver in the tree: the service's.
    const nested = ['core', 'tenancy', 'cache', 'search', 'testing'].filter((name) => {
      try {
        readFileSync(join(app, `node_modules/@caas-db/${name}/node_modules/mongodb/package.json`));
        return true;
      } catch {
        return false;
      }
    });
    expect(nested).toEqual([]);
  });

  it('runs the README snippet as ESM', async () => {
    expect(lastLine(await runScript(app, 'readme.mjs', 'consumer_esm'))).toEqual(EXPECTED_SNIPPET_OUTPUT);
  });

  it('runs the README snippet as CommonJS', async () => {
    expect(lastLine(await runScript(app, 'readme.cjs', 'consumer_cjs'))).toEqual(EXPECTED_SNIPPET_OUTPUT);
  });

  it.each(['node16', 'bundler'])(
    'compiles the README snippet with strict, exactOptionalPropertyTypes and noUncheckedIndexedAccess under moduleResolution %s, and runs it',
    async (resolution) => {
      const tsc = join(root, 'node_modules/typescript/bin/tsc');
      await run(process.execPath, [tsc, '-p', `tsconfig.${resolution}.json`], { cwd: app }).catch((error: { stdout?: string }) => {
        throw new Error(`tsc failed under ${resolution}:\n${error.stdout ?? String(error)}`);
      });
      expect(lastLine(await runScript(app, `out-${resolution}/readme.js`, `consumer_ts_${resolution}`))).toEqual(EXPECTED_SNIPPET_OUTPUT);
    },
    // Under node16 tsc checks the driver's and our declarations too (skipLibCheck: false), seconds of
    // CPU on 2 shared cores; bundler resolves the same .d.ts files, so it checks only the snippet.
    SETUP_MS,
  );

  it('shares error brands and the tenant context between the ESM and CommonJS copies of a mixed-format service', async () => {
    expect(lastLine(await runScript(app, 'mixed.mjs', 'consumer_mixed'))).toEqual({
      twoCopiesOfCore: true,
      isCaasDbError: true,
      instanceofCaasDbError: true,
      instanceofValidationError: true,
      instanceofOtherClass: false,
      code: 'E_VALIDATION',
      tenantSeenAcrossCopies: 'acme',
    });
  });

  it(`works with the lowest supported peers (mongodb ${LOWEST.mongodb}, zod ${LOWEST.zod}) and takes the service's own ObjectId`, async () => {
    expect(lastLine(await runScript(lowest, 'lowest.mjs', 'consumer_lowest'))).toEqual({
      driver: LOWEST.mongodb,
      ownClass: true,
      foundByOwnObjectId: 'Alice',
      missing: null,
    });
  });
});
