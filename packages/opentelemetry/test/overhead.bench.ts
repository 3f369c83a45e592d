// pnpm bench:otel: what the caas-db:operation channel costs with no subscriber, and what this
// package costs when it is on. Two measurements, each mode interleaved round by round:
//  1. the pipeline alone (no layers, a terminal that resolves at once, no server): ns per run;
//  2. users.findById on a real server: wall µs and client CPU µs per operation.
import { CommandPipeline, createDataClient, createDataLayer, type OperationContext, operationChannel } from '@caas-db/core';
import { startMongo } from '@caas-db/testing';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { instrumentCaasDb } from '../src/index.js';

type Mode = 'no subscriber' | 'no-op subscriber' | '@caas-db/opentelemetry';
const MODES: Mode[] = ['no subscriber', 'no-op subscriber', '@caas-db/opentelemetry'];
const ROUNDS = 5;

const spans = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
const meterProvider = new MeterProvider();
const noop = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };

/** Turns a mode on; returns how to turn it off. */
function enable(mode: Mode): () => void {
  if (mode === 'no-op subscriber') {
    operationChannel.subscribe(noop);
    return () => operationChannel.unsubscribe(noop);
  }
  if (mode === '@caas-db/opentelemetry') {
    const instrumentation = instrumentCaasDb({ tracerProvider, meterProvider });
    return () => {
      instrumentation.disable();
      spans.reset();
    };
  }
  return () => {};
}

async function measure(mode: Mode, count: number, op: () => Promise<unknown>) {
  const disable = enable(mode);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await op();
  const wallNs = Number(process.hrtime.bigint() - started);
  const used = process.cpuUsage(cpu);
  disable();
  return { wallNs: wallNs / count, cpuNs: ((used.user + used.system) * 1000) / count };
}

async function compare(title: string, count: number, op: () => Promise<unknown>, unit: 'ns' | 'µs') {
  const totals = new Map<Mode, { wall: number[]; cpu: number[] }>(MODES.map((mode) => [mode, { wall: [], cpu: [] }]));
  await measure('no subscriber', count, op); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of MODES) {
      const { wallNs, cpuNs } = await measure(mode, count, op);
      totals.get(mode)?.wall.push(wallNs);
      totals.get(mode)?.cpu.push(cpuNs);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
  const scale = unit === 'ns' ? 1 : 1000;
  console.log(`\n${title} (${count} per round, median of ${ROUNDS} rounds)`);
  console.log(`| mode | wall ${unit}/op | CPU ${unit}/op |\n|---|---:|---:|`);
  for (const [mode, { wall, cpu }] of totals) {
    console.log(
      `| ${mode} | ${(median(wall) / scale).toFixed(unit === 'ns' ? 0 : 1)} | ${(median(cpu) / scale).toFixed(unit === 'ns' ? 0 : 1)} |`,
    );
  }
}

// 0. The one thing the pipeline does for tracing when nobody subscribes: read hasSubscribers.
{
  const reads = 50_000_000;
  let seen = 0;
  const cpu = process.cpuUsage();
  for (let i = 0; i < reads; i++) if (operationChannel.hasSubscribers) seen++;
  const used = process.cpuUsage(cpu);
  console.log(
    `operationChannel.hasSubscribers with no subscriber: ${(((used.user + used.system) * 1000) / reads).toFixed(2)} ns CPU per read (${seen} true)`,
  );
}

// 1. The pipeline alone: what a run costs around the command with each mode.
const pipeline = new CommandPipeline([], async () => null);
const ctx = () =>
  ({
    operation: 'users.findOne',
    collection: { name: 'users', tenantOwned: true },
    command: { kind: 'findOne' },
    aspects: { access: 'read', idempotent: true, tenantScoped: true, admin: false, followUp: false },
    layers: [],
  }) as unknown as OperationContext;
await compare('CommandPipeline.run, no layers, no server', 200_000, () => pipeline.run(ctx()), 'ns');

// 2. A repository read on the test server.
const mongo = await startMongo();
const client = createDataClient({ uri: mongo.uri, database: `otel_bench_${Date.now()}` });
try {
  const acme = createDataLayer({ client }).forTenant('acme');
  const user = await acme.users.create({ external_id: 'bench', profile: { display_name: 'Bench' } });
  await compare(`users.findById on ${mongo.description}`, 2_000, () => acme.users.findById(user._id), 'µs');
} finally {
  await client.close();
  await mongo.stop();
}
const os = await import('node:os');
console.log(
  `\nNode ${process.version}, ${os.cpus().length} cores, load average ${os
    .loadavg()
    .map((load) => load.toFixed(1))
    .join(' ')}`,
);
