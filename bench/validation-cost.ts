/**
 * What zod validation costs on the hottest write path (messages.create), measured without a
 * server: the CPU time of turning caller input into a document ready to insert, with validation
 * on and off. Run: pnpm bench:validation
 */
import { cpus } from 'node:os';
import {
  CommandPipeline,
  KeysetCursorCodec,
  MessageRepository,
  messagesDefinition,
  ObjectId,
  ScopedCollection,
} from '../packages/core/src/index.js';

class MeasuredMessages extends MessageRepository {
  prepare(input: unknown): unknown {
    return this.prepareInsert(input, 'message');
  }
}

// Nothing is sent: only prepareInsert runs, so the pipeline has no layers and a terminal that refuses.
const pipeline = new CommandPipeline([], () => Promise.reject(new Error('not sent in this benchmark')));
const environment = { pipeline, resolveTenant: undefined, isTenantOwned: () => true };
const build = (validate: boolean) =>
  new MeasuredMessages(messagesDefinition, {
    collection: new ScopedCollection(environment, { name: 'messages', tenantOwned: true }, 'acme'),
    cursors: new KeysetCursorCodec(),
    validate,
  });

const input = {
  conversation_id: new ObjectId().toHexString(),
  sender_id: new ObjectId().toHexString(),
  content: {
    type: 'text',
    encrypted_data: 'x'.repeat(256),
    encrypted_key: { [new ObjectId().toHexString()]: 'k'.repeat(64), [new ObjectId().toHexString()]: 'k'.repeat(64) },
  },
  search_tokens: ['token_aaaaaaaa', 'token_bbbbbbbb', 'token_cccccccc'],
};

function measure(validate: boolean, iterations: number): number {
  const repository = build(validate);
  for (let index = 0; index < 2000; index += 1) repository.prepare(input);
  const started = process.cpuUsage();
  for (let index = 0; index < iterations; index += 1) repository.prepare(input);
  const used = process.cpuUsage(started);
  return (used.user + used.system) / iterations;
}

const iterations = 50_000;
const rounds = 5;
const on: number[] = [];
const off: number[] = [];
for (let round = 0; round < rounds; round += 1) {
  on.push(measure(true, iterations));
  off.push(measure(false, iterations));
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const validated = median(on);
const unvalidated = median(off);
process.stdout.write(
  [
    `machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}`,
    `messages.create input preparation, median of ${rounds} rounds of ${iterations}:`,
    `  validation on : ${validated.toFixed(2)} µs CPU per message`,
    `  validation off: ${unvalidated.toFixed(2)} µs CPU per message (key guards still run)`,
    `  saved         : ${(validated - unvalidated).toFixed(2)} µs per message (${(((validated - unvalidated) / validated) * 100).toFixed(0)}%)`,
    '',
  ].join('\n'),
);
