import { type OperationTrace, operationChannel, parseConfig } from '@caas-db/core';
import {
  type Attributes,
  type Histogram,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { z } from 'zod';
import { attributesOf, DB_CLIENT_OPERATION_DURATION, DURATION_BUCKETS_S, errorType, spanNameOf } from './semantic-conventions.js';

/** Options of {@link instrumentCaasDb}. */
export interface CaasDbInstrumentationOptions {
  /** Where spans go. @default the global tracer provider (`trace.getTracerProvider()`) */
  tracerProvider?: TracerProvider;
  /** Where the `db.client.operation.duration` histogram goes. @default the global meter provider */
  meterProvider?: MeterProvider;
  /** Make a span per operation. @default true */
  spans?: boolean;
  /** Record `db.client.operation.duration` per operation. @default true */
  metrics?: boolean;
}

/** A running instrumentation, from {@link instrumentCaasDb}. */
export interface CaasDbInstrumentation {
  /** Unsubscribes from the `caas-db:operation` channel: operations after it make no spans or measurements. Idempotent. */
  disable(): void;
}

const optionsSchema = z
  .strictObject({
    tracerProvider: z.custom<TracerProvider>((value) => typeof (value as TracerProvider | null)?.getTracer === 'function', {
      message: 'must be an OpenTelemetry TracerProvider (with getTracer)',
    }),
    meterProvider: z.custom<MeterProvider>((value) => typeof (value as MeterProvider | null)?.getMeter === 'function', {
      message: 'must be an OpenTelemetry MeterProvider (with getMeter)',
    }),
    spans: z.boolean(),
    metrics: z.boolean(),
  })
  .partial();

const SCOPE = '@caas-db/opentelemetry';

/** What one operation in flight carries between the channel's events. */
interface InFlight {
  readonly span: Span | undefined;
  readonly started: number;
  readonly attributes: Attributes;
}

/**
 * Subscribes to the `caas-db:operation` tracing channel of every data layer in the process and
 * turns each operation into a CLIENT span and a `db.client.operation.duration` measurement,
 * following the OpenTelemetry database semantic conventions (`db.system.name: mongodb`,
 * `db.collection.name`, `db.operation.name`, `error.type`); the repository operation is
 * `caas_db.operation` and, when the data layer traces it (`tracing: { tenant: true }`), the tenant
 * is `caas_db.tenant`. A span's parent is the context active where the operation was called.
 *
 * @example
 * ```ts
 * import { instrumentCaasDb } from '@caas-db/opentelemetry';
 *
 * const instrumentation = instrumentCaasDb(); // the global tracer and meter providers
 * await data.forTenant('acme').users.findById(userId); // a span "findOne users" and one measurement
 * instrumentation.disable();
 * ```
 * @throws {ConfigError} when an option is invalid.
 */
export function instrumentCaasDb(options: CaasDbInstrumentationOptions = {}): CaasDbInstrumentation {
  const parsed = parseConfig(optionsSchema, options);
  const tracer: Tracer | undefined =
    parsed.spans === false ? undefined : (parsed.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE);
  const duration: Histogram | undefined =
    parsed.metrics === false
      ? undefined
      : (parsed.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE).createHistogram(DB_CLIENT_OPERATION_DURATION, {
          description: 'Duration of database client operations.',
          unit: 's',
          advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
        });
  // Keyed by the trace object the channel passes to every event of one operation.
  const inFlight = new WeakMap<OperationTrace, InFlight>();

  const finish = (message: OperationTrace) => {
    const state = inFlight.get(message);
    if (!state) return;
    inFlight.delete(message);
    const failed = message.error !== undefined;
    const type = failed ? errorType(message.error) : undefined;
    if (state.span) {
      if (failed) {
        state.span.setAttribute('error.type', type as string);
        state.span.setStatus({
          code: SpanStatusCode.ERROR,
          message: message.error instanceof Error ? message.error.message : String(message.error),
        });
        if (message.error instanceof Error) state.span.recordException(message.error);
      }
      state.span.end();
    }
    duration?.record((performance.now() - state.started) / 1000, failed ? { ...state.attributes, 'error.type': type } : state.attributes);
  };

  const handlers = {
    start(message: OperationTrace) {
      const attributes = attributesOf(message);
      const span = tracer?.startSpan(spanNameOf(message), { kind: SpanKind.CLIENT, attributes });
      // Only the low-cardinality attributes go on the metric: no tenant, no repository method.
      const metricAttributes: Attributes = {
        'db.system.name': attributes['db.system.name'],
        'db.operation.name': attributes['db.operation.name'],
        ...(attributes['db.collection.name'] !== undefined && { 'db.collection.name': attributes['db.collection.name'] }),
      };
      inFlight.set(message, { span, started: performance.now(), attributes: metricAttributes });
    },
    // A synchronous throw publishes error then end, and no async events.
    end(message: OperationTrace) {
      if (message.error !== undefined) finish(message);
    },
    asyncStart() {},
    asyncEnd: finish,
    error() {},
  };
  operationChannel.subscribe(handlers);
  let enabled = true;
  return {
    disable() {
      if (!enabled) return;
      enabled = false;
      operationChannel.unsubscribe(handlers);
    },
  };
}
