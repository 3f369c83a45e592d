/**
 * Counts the repository calls of each tenant in flight through the regional data layer, so a move
 * can let the calls admitted before its fence finish before it holds writes: a call that wrote
 * once is never cut off before its second write.
 */
export class CallTracker {
  readonly #inFlight = new Map<string, number>();
  readonly #drained = new Map<string, Array<() => void>>();

  enter(tenant: string): void {
    this.#inFlight.set(tenant, (this.#inFlight.get(tenant) ?? 0) + 1);
  }

  leave(tenant: string): void {
    const left = (this.#inFlight.get(tenant) ?? 1) - 1;
    if (left > 0) {
      this.#inFlight.set(tenant, left);
      return;
    }
    this.#inFlight.delete(tenant);
    const waiting = this.#drained.get(tenant);
    this.#drained.delete(tenant);
    for (const resolve of waiting ?? []) resolve();
  }

  /** Resolves once the tenant has no call in flight. */
  drained(tenant: string): Promise<void> {
    if (!this.#inFlight.has(tenant)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = this.#drained.get(tenant) ?? [];
      waiting.push(resolve);
      this.#drained.set(tenant, waiting);
    });
  }
}
