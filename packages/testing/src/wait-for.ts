/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** What is awaited, for the error message. @default 'condition' */
  what?: string;
  /** Give up after this long: generous, since CI shares its cores with the servers. @default 30000 */
  timeoutMS?: number;
  /** Pause between two checks. @default 10 */
  intervalMS?: number;
}

/**
 * Waits for a condition instead of for time to pass: checks `check` until it holds, pausing
 * `intervalMS` between checks, and throws naming `what` after `timeoutMS`.
 * @returns how long it took, in milliseconds.
 *
 * @example
 * ```ts
 * await waitFor(() => redis.status === 'ready', { what: 'Redis to reconnect' });
 * ```
 */
export async function waitFor(check: () => boolean | Promise<boolean>, options: WaitForOptions = {}): Promise<number> {
  const { what = 'condition', timeoutMS = 30_000, intervalMS = 10 } = options;
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMS) throw new Error(`not within ${timeoutMS} ms: ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMS));
  }
}
