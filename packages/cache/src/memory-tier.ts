import { LRUCache } from 'lru-cache';

/** Options of the in-process tier. */
export interface MemoryTierOptions {
  /** Most entries. @default 10000 */
  maxEntries?: number;
  /** Most bytes (encoded size of the entries). @default 64 MiB */
  maxBytes?: number;
}

/**
 * The in-process tier (L1): an LRU bounded by entries and bytes, holding encoded entries, with a
 * tag index so that one write can drop every entry it makes stale.
 */
export class MemoryTier {
  readonly #entries: LRUCache<string, Buffer>;
  readonly #tagsOfKey = new Map<string, readonly string[]>();
  readonly #keysOfTag = new Map<string, Set<string>>();
  #evictions = 0;

  constructor(options: MemoryTierOptions = {}) {
    this.#entries = new LRUCache<string, Buffer>({
      max: options.maxEntries ?? 10_000,
      maxSize: options.maxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (value, key) => value.length + key.length,
      dispose: (_value, key, reason) => {
        if (reason === 'evict') this.#evictions += 1;
        this.#untag(key);
      },
    });
  }

  get(key: string): Buffer | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: Buffer, tags: readonly string[]): void {
    this.#entries.set(key, value);
    if (!this.#entries.has(key)) return; // larger than the whole tier
    this.#untag(key);
    this.#tagsOfKey.set(key, tags);
    for (const tag of tags) {
      let keys = this.#keysOfTag.get(tag);
      if (!keys) {
        keys = new Set();
        this.#keysOfTag.set(tag, keys);
      }
      keys.add(key);
    }
  }

  #untag(key: string): void {
    const tags = this.#tagsOfKey.get(key);
    if (!tags) return;
    this.#tagsOfKey.delete(key);
    for (const tag of tags) {
      const keys = this.#keysOfTag.get(tag);
      keys?.delete(key);
      if (keys?.size === 0) this.#keysOfTag.delete(tag);
    }
  }

  /** Drops every entry carrying one of `tags`. @returns how many were dropped. */
  invalidate(tags: readonly string[]): number {
    let dropped = 0;
    for (const tag of tags) {
      for (const key of [...(this.#keysOfTag.get(tag) ?? [])]) {
        if (this.#entries.delete(key)) dropped += 1;
      }
    }
    return dropped;
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#entries.calculatedSize;
  }

  get evictions(): number {
    return this.#evictions;
  }
}
