/**
 * One value per process for `key`, whichever copy of core asks: a service that loads core both as
 * ESM and as CommonJS (or two installed copies) has two module instances, and module-level state
 * such as an AsyncLocalStorage would split between them (a transaction opened through one copy
 * invisible to `afterCommit` called through the other). Keyed by a registry symbol on globalThis.
 */
export function processShared<T>(key: string, create: () => T): T {
  const registry = globalThis as unknown as Record<symbol, T | undefined>;
  const slot = Symbol.for(key);
  registry[slot] ??= create();
  return registry[slot];
}
