import { ExitCodes } from './exit-codes.js';

/**
 * The first Ctrl-C (SIGINT, or SIGTERM from a deploy tool) asks the running job to stop at its next
 * batch boundary; a second one exits at once with {@link ExitCodes.INTERRUPTED}.
 */
export function interruptSignal(note: (message: string) => void): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(ExitCodes.INTERRUPTED);
    note('Stopping at the next batch boundary (press Ctrl-C again to stop now)...');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
