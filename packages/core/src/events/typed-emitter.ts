/** A listener of one event. */
export type Listener<Data> = (data: Data) => void;

/**
 * A small synchronous event emitter typed by an event map. A listener that throws never breaks
 * the operation that emitted the event: the error is reported through `process.emitWarning`.
 */
export class TypedEmitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Registers `listener` for `event`; returns a function that removes it. */
  on<Name extends keyof Events>(event: Name, listener: Listener<Events[Name]>): () => void {
    let listeners = this.#listeners.get(event);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(event, listeners);
    }
    listeners.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Removes a listener registered with {@link on}. */
  off<Name extends keyof Events>(event: Name, listener: Listener<Events[Name]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** True when at least one listener waits for `event` (lets hot paths skip building event data). */
  hasListeners(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  /** Calls every listener of `event` with `data`. */
  emit<Name extends keyof Events>(event: Name, data: Events[Name]): void {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const listener of listeners) {
      try {
        (listener as Listener<Events[Name]>)(data);
      } catch (error) {
        process.emitWarning(
          `A listener of '${String(event)}' threw: ${error instanceof Error ? error.message : String(error)}`,
          'CaasDbListenerWarning',
        );
      }
    }
  }

  /** Removes every listener. */
  removeAllListeners(): void {
    this.#listeners.clear();
  }
}
