import { AsyncLocalStorage } from 'node:async_hooks';
import { type Middleware, middlewarePhases, type Next, type OperationContext } from './operation.js';

const running = new AsyncLocalStorage<OperationContext>();

/**
 * The operation the current code runs in, when it runs inside the pipeline: the driver emits its
 * command monitoring events within the operation's async context, so a listener (the isolation
 * auditor) can attribute a wire command to the operation that sent it.
 */
export function currentOperation(): OperationContext | undefined {
  return running.getStore();
}

/** Sends the command of a context to the server: the innermost step, after every layer. */
export type Terminal = (ctx: OperationContext) => Promise<unknown>;

/**
 * The one choke point: every command of a data layer runs through `run`, which passes it through
 * the middlewares by phase (outermost first, registration order within a phase) and finally the
 * terminal that talks to the driver. A layer may call `next` more than once (retry re-runs the
 * layers inside it).
 */
export class CommandPipeline {
  readonly #layers: readonly Middleware[];
  readonly #terminal: Terminal;
  readonly #enclose: (<T>(run: () => Promise<T>) => Promise<T>) | undefined;

  /** @param enclose - wraps every whole run (the data client counts it in flight for a draining close). */
  constructor(middlewares: readonly Middleware[], terminal: Terminal, enclose?: <T>(run: () => Promise<T>) => Promise<T>) {
    this.#enclose = enclose;
    const byPhase = (layer: Middleware) => middlewarePhases.indexOf(layer.phase);
    // Array.prototype.sort is stable: registration order holds within a phase.
    this.#layers = [...middlewares].sort((a, b) => byPhase(a) - byPhase(b));
    this.#terminal = terminal;
  }

  /** The layers in the order they run, outermost first. */
  get layers(): readonly Middleware[] {
    return this.#layers;
  }

  /** Runs one operation through every layer. */
  run(ctx: OperationContext): Promise<unknown> {
    const layers = this.#layers;
    const terminal = this.#terminal;
    const step =
      (index: number): Next =>
      () => {
        const layer = layers[index];
        if (!layer) {
          ctx.layers.push('send');
          return terminal(ctx);
        }
        ctx.layers.push(layer.name);
        return layer.handle(ctx, step(index + 1));
      };
    const enclose = this.#enclose;
    return enclose ? enclose(() => running.run(ctx, step(0))) : running.run(ctx, step(0));
  }
}
