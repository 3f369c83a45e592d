/**
 * A token bucket per tenant, in documents per second: a purge takes tokens before each batch and
 * waits for them, so it never runs faster than its budget however fast the server deletes. Wall
 * time (not the lifecycle clock): it paces real work.
 */
export class DocumentRateLimiter {
  readonly #perSecond: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(
    perSecond: number,
    now: () => number = () => performance.now(),
    sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    this.#perSecond = perSecond;
    this.#now = now;
    this.#sleep = sleep;
  }

  /** Waits until `count` documents of `tenant` may be processed (a burst of up to one second's worth is allowed). */
  async take(tenant: string, count: number): Promise<void> {
    const bucket = this.#buckets.get(tenant) ?? { tokens: this.#perSecond, at: this.#now() };
    this.#buckets.set(tenant, bucket);
    for (;;) {
      const now = this.#now();
      bucket.tokens = Math.min(this.#perSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.#perSecond);
      bucket.at = now;
      // A batch larger than the bucket waits until the bucket is full, then overdraws it.
      const needed = Math.min(count, this.#perSecond);
      if (bucket.tokens >= needed) {
        bucket.tokens -= count;
        return;
      }
      await this.#sleep(Math.ceil(((needed - bucket.tokens) / this.#perSecond) * 1000));
    }
  }
}
