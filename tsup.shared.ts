import { defineConfig, type Options } from 'tsup';

/** One build recipe for every package: ESM + CJS + .d.ts, Node 20.19 floor. */
export function packageBuild(entry: Record<string, string>, overrides: Options = {}) {
  return defineConfig({
    entry,
    format: ['esm', 'cjs'],
    // Members marked @internal are left out of the published declarations (and the API reports).
    dts: { compilerOptions: { stripInternal: true } },
    sourcemap: true,
    clean: true,
    target: 'node20',
    platform: 'node',
    splitting: false,
    treeshake: true,
    ...overrides,
  });
}
