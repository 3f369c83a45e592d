/** Bounds of a batch. */
export interface BatchBounds {
  /** Most items in one batch. */
  maxBatch: number;
  /** Longest an item waits for a free slot while every batch slot of its key is busy. */
  maxWaitMS: number;
  /** Batches of one key in flight at once. @default 4 */
  maxInFlight?: number;
}

/** The outcome of one item of a batch. */
export type ItemOutcome<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

interface KeyState<I, O> {
  queue: Waiting<I, O>[];
  inFlight: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Coalesces concurrent calls into batches by natural batching: a call whose key has a free batch
 * slot goes out at once (no added latency at low load); while all slots are busy, calls queue and
 * leave together when a slot frees up, when `maxBatch` are waiting, or after `maxWaitMS`. Each
 * call gets its own item's outcome. A batch is sent from the async context of the call that
 * triggered it, so a key must include whatever that context carries (the tenant).
 */
export class Coalescer<I, O> {
  readonly #bounds: BatchBounds;
  readonly #flush: (items: I[]) => Promise<ItemOutcome<O>[]>;
  readonly #keys = new Map<string, KeyState<I, O>>();

  constructor(bounds: BatchBounds, flush: (items: I[]) => Promise<ItemOutcome<O>[]>) {
    this.#bounds = bounds;
    this.#flush = flush;
  }

  /**
   * Runs `alone` right away when `key` has nothing queued or in flight, counting it in flight so
   * that calls arriving meanwhile queue up and leave as a batch after it; undefined (nothing run)
   * otherwise. A lone caller pays for no batch machinery.
   */
  runAlone<T>(key: string, alone: () => Promise<T>): Promise<T> | undefined {
    if (this.#keys.has(key)) return undefined;
    const state: KeyState<I, O> = { queue: [], inFlight: 1, timer: undefined };
    this.#keys.set(key, state);
    return alone().finally(() => this.#settled(key, state));
  }

  /** Adds one item to the batch of `key`; resolves with that item's result. */
  add(key: string, item: I): Promise<O> {
    let state = this.#keys.get(key);
    if (!state) {
      state = { queue: [], inFlight: 0, timer: undefined };
      this.#keys.set(key, state);
    }
    const keyState = state;
    const result = new Promise<O>((resolve, reject) => keyState.queue.push({ item, resolve, reject }));
    if (keyState.inFlight < (this.#bounds.maxInFlight ?? 4) || keyState.queue.length >= this.#bounds.maxBatch) {
      this.#send(key, keyState);
    } else if (keyState.timer === undefined) {
      keyState.timer = setTimeout(() => {
        keyState.timer = undefined;
        this.#send(key, keyState);
      }, this.#bounds.maxWaitMS);
    }
    return result;
  }

  #send(key: string, state: KeyState<I, O>): void {
    if (state.timer !== undefined) {
      clearTimeout(state.timer);
      state.timer = undefined;
    }
    const batch = state.queue.splice(0, this.#bounds.maxBatch);
    if (batch.length === 0) return;
    state.inFlight += 1;
    this.#flush(batch.map((waiting) => waiting.item))
      .then(
        (outcomes) => {
          batch.forEach((waiting, index) => {
            const outcome = outcomes[index];
            if (!outcome) waiting.reject(new Error('the batch returned no outcome for this item'));
            else if (outcome.ok) waiting.resolve(outcome.value);
            else waiting.reject(outcome.error);
          });
        },
        (error: unknown) => {
          for (const waiting of batch) waiting.reject(error);
        },
      )
      .finally(() => this.#settled(key, state));
  }

  /** One send of `key` is over: the next batch leaves, or the key is forgotten once idle. */
  #settled(key: string, state: KeyState<I, O>): void {
    state.inFlight -= 1;
    if (state.queue.length > 0) this.#send(key, state);
    else if (state.inFlight === 0 && state.timer === undefined) this.#keys.delete(key);
  }
}
