/** Bounds of a batch. */
export interface BatchBounds {
  /** Most items in one batch. */
  maxBatch: number;
  /** Longest an item waits for others before its batch is sent (0: the next turn of the event loop). */
  maxWaitMS: number;
}

/** The outcome of one item of a batch. */
export type ItemOutcome<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Pending<I, O> {
  items: I[];
  settle: Array<{ resolve: (value: O) => void; reject: (error: unknown) => void }>;
  timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
}

/**
 * Coalesces concurrent calls into batches: calls with the same key made within `maxWaitMS` (or
 * until `maxBatch` items) are sent together by `flush`, and each call gets its own item's outcome.
 * The batch is sent from the async context of the call that started it, so a key must include
 * whatever that context carries (the tenant).
 */
export class Coalescer<I, O> {
  readonly #bounds: BatchBounds;
  readonly #flush: (items: I[]) => Promise<ItemOutcome<O>[]>;
  readonly #pending = new Map<string, Pending<I, O>>();

  constructor(bounds: BatchBounds, flush: (items: I[]) => Promise<ItemOutcome<O>[]>) {
    this.#bounds = bounds;
    this.#flush = flush;
  }

  /** Adds one item to the batch of `key`; resolves with that item's result. */
  add(key: string, item: I): Promise<O> {
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = { items: [], settle: [], timer: undefined };
      this.#pending.set(key, pending);
    }
    const batch = pending;
    const result = new Promise<O>((resolve, reject) => batch.settle.push({ resolve, reject }));
    batch.items.push(item);
    if (batch.items.length >= this.#bounds.maxBatch) {
      this.#send(key, batch);
    } else if (batch.timer === undefined) {
      batch.timer =
        this.#bounds.maxWaitMS === 0
          ? setImmediate(() => this.#send(key, batch))
          : setTimeout(() => this.#send(key, batch), this.#bounds.maxWaitMS);
    }
    return result;
  }

  #send(key: string, batch: Pending<I, O>): void {
    if (this.#pending.get(key) === batch) this.#pending.delete(key);
    if (batch.timer !== undefined) {
      clearTimeout(batch.timer as NodeJS.Timeout);
      clearImmediate(batch.timer as NodeJS.Immediate);
    }
    const { items, settle } = batch;
    if (items.length === 0) return;
    batch.items = [];
    this.#flush(items).then(
      (outcomes) => {
        settle.forEach((callbacks, index) => {
          const outcome = outcomes[index];
          if (!outcome) callbacks.reject(new Error('the batch returned no outcome for this item'));
          else if (outcome.ok) callbacks.resolve(outcome.value);
          else callbacks.reject(outcome.error);
        });
      },
      (error: unknown) => {
        for (const callbacks of settle) callbacks.reject(error);
      },
    );
  }
}
