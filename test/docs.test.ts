import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createTestDataLayer, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { renderDataModelDoc } from '../scripts/data-model-doc.js';

const root = new URL('..', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** The ```ts blocks of a markdown file, in order. */
function codeBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
}

/**
 * Turns one documentation block into a module: its imports stay at the top, the rest runs inside a
 * function given the data layer as `data` (a block may declare its own `data`, which shadows it).
 */
function toModule(block: string, index: number): URL {
  const lines = block.split('\n');
  const imports = lines.filter((line) => line.startsWith('import '));
  const body = lines.filter((line) => !line.startsWith('import '));
  const source = [
    ...imports,
    'export default async function run(given) {',
    '  const { data } = given;',
    '  {',
    ...body.map((line) => `    ${line}`),
    '  }',
    '}',
    '',
  ].join('\n');
  const folder = new URL('test/.generated/', root);
  mkdirSync(folder, { recursive: true });
  const file = new URL(`repositories-example-${index}.ts`, folder);
  writeFileSync(file, source);
  return file;
}

describe('docs/data-model.md', () => {
  it('is what the repository definitions generate (run pnpm docs:data-model after changing them)', () => {
    expect(read('docs/data-model.md')).toBe(renderDataModelDoc());
  });
});

describe('docs/repositories.md', () => {
  const data = createTestDataLayer();
  const blocks = codeBlocks(read('docs/repositories.md'));

  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  it('runs every example, in order, against the test server', async () => {
    const previousUri = process.env.MONGODB_URI;
    process.env.MONGODB_URI = testEnvironment().mongo.uri;
    try {
      for (const [index, block] of blocks.entries()) {
        const module = (await import(fileURLToPath(toModule(block, index)))) as {
          default: (given: { data: typeof data }) => Promise<void>;
        };
        await module.default({ data }).catch((error: unknown) => {
          throw new Error(`example ${index + 1} of docs/repositories.md failed: ${error instanceof Error ? error.stack : String(error)}`);
        });
      }
    } finally {
      if (previousUri === undefined) delete process.env.MONGODB_URI;
      else process.env.MONGODB_URI = previousUri;
    }
  });
});
