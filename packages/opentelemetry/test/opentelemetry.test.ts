import { ConfigError, createDataLayer, DuplicateKeyError, ValidationError } from '@caas-db/core';
import { DB_CLIENT_OPERATION_DURATION, instrumentCaasDb } from '@caas-db/opentelemetry';
import { createTestClient, createTestDataLayer } from '@caas-db/testing/vitest';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  METRIC_DB_CLIENT_OPERATION_DURATION,
} from '@opentelemetry/semantic-conventions';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const data = createTestDataLayer();

// What a service's OpenTelemetry setup registers: the active span follows async calls.
const contextManager = new AsyncLocalStorageContextManager();
beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(() => {
  contextManager.disable();
  context.disable();
});

/** The SDK with in-memory exporters: every span as it ends, the metrics when collected. */
function sdk() {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // Read on demand (forceFlush) only: the interval is never what a test waits for.
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    tracerProvider,
    meterProvider,
    finished: (): ReadableSpan[] => spans.getFinishedSpans(),
    /** Every data point of db.client.operation.duration collected so far. */
    async durations() {
      await reader.forceFlush();
      const resourceMetrics = metrics.getMetrics().at(-1);
      const metric = resourceMetrics?.scopeMetrics
        .flatMap((scope) => scope.metrics)
        .find((m) => m.descriptor.name === DB_CLIENT_OPERATION_DURATION);
      return {
        unit: metric?.descriptor.unit,
        points: (metric?.dataPoints ?? []) as Array<{ attributes: Record<string, unknown>; value: { count: number; sum: number } }>,
      };
    },
  };
}

let otel: ReturnType<typeof sdk>;
let instrumentation: ReturnType<typeof instrumentCaasDb>;

beforeEach(() => {
  otel = sdk();
  instrumentation = instrumentCaasDb({ tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider });
});

afterEach(() => instrumentation.disable());

describe('@caas-db/opentelemetry', () => {
  it('uses the attribute and metric names of the OpenTelemetry database semantic conventions', () => {
    expect(DB_CLIENT_OPERATION_DURATION).toBe(METRIC_DB_CLIENT_OPERATION_DURATION);
    expect([ATTR_DB_SYSTEM_NAME, ATTR_DB_COLLECTION_NAME, ATTR_DB_OPERATION_NAME, ATTR_ERROR_TYPE]).toEqual([
      'db.system.name',
      'db.collection.name',
      'db.operation.name',
      'error.type',
    ]);
  });

  it('makes one CLIENT span per repository operation, a child of the caller’s span, with the conventions’ attributes', async () => {
    const acme = data.forTenant('acme');
    const parent = otel.tracerProvider.getTracer('test').startSpan('request');
    const user = await context.with(trace.setSpan(context.active(), parent), () =>
      acme.users.create({ external_id: 'otel-alice', profile: { display_name: 'Alice' } }),
    );
    await acme.users.findById(user._id);
    parent.end();

    const ours = otel.finished().filter((span) => span.instrumentationScope.name === '@caas-db/opentelemetry');
    expect(ours.map((span) => span.name)).toEqual(expect.arrayContaining([expect.stringMatching(/ users$/)]));
    const create = ours.find((span) => span.attributes['caas_db.operation'] === 'users.create');
    const read = ours.find((span) => span.attributes['caas_db.operation'] === 'users.findOne');
    if (!create || !read) throw new Error(`missing spans: ${ours.map((span) => span.attributes['caas_db.operation']).join(', ')}`);
    expect(create.kind).toBe(SpanKind.CLIENT);
    expect(create.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(read.parentSpanContext).toBeUndefined();
    expect(read.attributes).toMatchObject({
      [ATTR_DB_SYSTEM_NAME]: 'mongodb',
      [ATTR_DB_COLLECTION_NAME]: 'users',
      [ATTR_DB_OPERATION_NAME]: expect.any(String),
    });
    expect(read.name).toBe(`${String(read.attributes[ATTR_DB_OPERATION_NAME])} users`);
    expect(read.attributes).not.toHaveProperty('caas_db.tenant');
    expect(read.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('records db.client.operation.duration in seconds with low-cardinality attributes', async () => {
    const acme = data.forTenant('acme');
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => acme.users.create({ external_id: `otel-m-${i}`, profile: { display_name: `M${i}` } })),
    );
    const { unit, points } = await otel.durations();
    expect(unit).toBe('s');
    const inserts = points.filter(
      (point) => point.attributes[ATTR_DB_COLLECTION_NAME] === 'users' && point.attributes[ATTR_ERROR_TYPE] === undefined,
    );
    expect(inserts.reduce((sum, point) => sum + point.value.count, 0)).toBeGreaterThanOrEqual(5);
    for (const point of points) {
      expect(point.attributes[ATTR_DB_SYSTEM_NAME]).toBe('mongodb');
      expect(point.attributes).not.toHaveProperty('caas_db.operation');
      expect(point.attributes).not.toHaveProperty('caas_db.tenant');
      // Seconds, not milliseconds: one operation on a local server is far below a minute.
      expect(point.value.sum / point.value.count).toBeLessThan(60);
    }
  });

  it('marks a failed operation: span status ERROR, error.type the caas-db error code, on the span and the metric', async () => {
    const acme = data.forTenant('acme');
    await acme.users.create({ external_id: 'otel-dup', profile: { display_name: 'Dup' } });
    const error = await acme.users.create({ external_id: 'otel-dup', profile: { display_name: 'Dup' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DuplicateKeyError);
    const failed = otel.finished().filter((span) => span.status.code === SpanStatusCode.ERROR);
    expect(failed.map((span) => span.attributes[ATTR_ERROR_TYPE])).toEqual(['E_DUPLICATE_KEY']);
    expect(failed[0]?.events.map((event) => event.name)).toContain('exception');
    const { points } = await otel.durations();
    expect(points.filter((point) => point.attributes[ATTR_ERROR_TYPE] === 'E_DUPLICATE_KEY').map((point) => point.value.count)).toEqual([
      1,
    ]);
  });

  it('adds the tenant only when the data layer traces it', async () => {
    const client = createTestClient();
    const withTenant = createDataLayer({ client, tracing: { tenant: true } });
    await withTenant.forTenant('globex').users.findById('0123456789abcdef01234567');
    const spans = otel.finished().filter((span) => span.attributes['caas_db.operation'] === 'users.findOne');
    expect(spans.map((span) => span.attributes['caas_db.tenant'])).toEqual(['globex']);
  });

  it('keeps every span of concurrent operations apart', async () => {
    const acme = data.forTenant('acme');
    const created = await Promise.all(
      Array.from({ length: 20 }, (_, i) => acme.users.create({ external_id: `otel-c-${i}`, profile: { display_name: `C${i}` } })),
    );
    const spans = otel.finished().filter((span) => span.attributes['caas_db.operation'] === 'users.create');
    expect(spans).toHaveLength(created.length);
    expect(new Set(spans.map((span) => span.spanContext().spanId)).size).toBe(created.length);
    expect(spans.every((span) => span.ended && span.status.code === SpanStatusCode.UNSET)).toBe(true);
  });

  it('stops at disable(): later operations make no spans and no measurements', async () => {
    instrumentation.disable();
    instrumentation.disable();
    await data.forTenant('acme').users.findById('0123456789abcdef01234567');
    expect(otel.finished()).toEqual([]);
    expect((await otel.durations()).points).toEqual([]);
  });

  it('refuses invalid options with a ConfigError naming each field', () => {
    const refused = (() => {
      try {
        instrumentCaasDb({ tracerProvider: {} as never, spans: 'yes' as never });
      } catch (error) {
        return error;
      }
    })();
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).issues.map((issue) => issue.path).sort()).toEqual(['spans', 'tracerProvider']);
    expect(refused).not.toBeInstanceOf(ValidationError);
  });
});
