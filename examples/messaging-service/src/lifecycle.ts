import type { FastifyInstance } from 'fastify';
import type { DataStore } from './data-store.js';

/**
 * Stops the service in order: stop accepting connections and let the requests in flight finish
 * (new requests on kept-alive connections get 503), then close the data layer once its own
 * operations have drained (up to `drainTimeoutMS`).
 */
export async function shutdown(app: FastifyInstance, store: DataStore, drainTimeoutMS: number): Promise<void> {
  await app.close();
  await store.close(drainTimeoutMS);
}

/**
 * Runs `stop` once on the first SIGTERM or SIGINT, then exits: 0 when it finished, 1 when it
 * failed or took longer than `timeoutMS` (an orchestrator sends SIGKILL soon after anyway).
 */
export function stopOnSignals(stop: () => Promise<void>, timeoutMS: number, log: (message: string) => void): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: draining requests, then closing the data layer`);
    setTimeout(() => {
      log(`still draining after ${timeoutMS} ms: exiting`);
      process.exit(1);
    }, timeoutMS).unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
