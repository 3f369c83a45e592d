import { AsyncLocalStorage } from 'node:async_hooks';
import { tracingChannel } from 'node:diagnostics_channel';
import { processShared } from '../shared-state.js';
import { type Middleware, middlewarePhases, type Next, type OperationContext } from './operation.js';

// Shared by every copy of core in the process (see processShared): currentOperation() called
// through one copy sees an operation run by another.
const running = processShared('@caas-db/core/current-operation', () => new AsyncLocalStorage<OperationContext>());

/** What `caas-db:operation` subscribers receive for each operation (see docs/architecture.md). */
export interface OperationTrace {
  /** `<collection>.<method>`, e.g. `messages.markAsRead`. */
  readonly operation: string;
  readonly collection: string | undefined;
  readonly kind: string;
  readonly aspects: OperationContext['aspects'];
  /** The tenant, only when the data layer was created with `tracing: { tenant: true }`. */
  readonly tenant?: string | undefined;
  /** Set by the channel: the result or the error. */
  result?: unknown;
  error?: unknown;
}

/**
 * The `node:diagnostics_channel` tracing channel of every operation (`tracing:caas-db:operation:start`,
 * `end`, `asyncStart`, `asyncEnd`, `error`): an OpenTelemetry integration subscribes to it to make a
 * span per repository operation. With no subscriber it costs one property read per operation.
 */
export const operationChannel = tracingChannel<unknown, OperationTrace>('caas-db:operation');

/**
 * The operation the current code runs in, when it runs inside the pipeline of a data layer that
 * binds operations (a plugin with `bindsOperation`, such as the tenancy auditor in enforce mode):
 * the driver emits its command monitoring events within the operation's async context, so a
 * listener can attribute a wire command to the operation that sent it. Undefined otherwise.
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
  /** Whether traces carry the tenant (opt-in: tenant ids may be personal data in a tracing backend). */
  traceTenant = false;
  /**
   * Whether each operation runs in its own async context (`currentOperation()`). Off unless a
   * plugin needs it (the auditor in enforce mode): on Node 20 an AsyncLocalStorage in use makes
   * every promise of the process pay a hook.
   */
  bindsOperation = false;

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
        // A layer that throws instead of rejecting still fails as a rejection, through every outer layer.
        try {
          const layer = layers[index];
          if (!layer) {
            ctx.layers.push('send');
            return terminal(ctx);
          }
          ctx.layers.push(layer.name);
          return layer.handle(ctx, step(index + 1));
        } catch (error) {
          return Promise.reject(error);
        }
      };
    const enclose = this.#enclose;
    const start = this.bindsOperation ? () => running.run(ctx, step(0)) : step(0);
    const traced = (): Promise<unknown> => {
      if (!operationChannel.hasSubscribers) return start();
      const trace: OperationTrace = {
        operation: ctx.operation,
        collection: ctx.collection?.name,
        kind: ctx.command.kind,
        aspects: ctx.aspects,
        ...(this.traceTenant && { tenant: ctx.tenant }),
      };
      return operationChannel.tracePromise(start, trace);
    };
    return enclose ? enclose(traced) : traced();
  }
}
