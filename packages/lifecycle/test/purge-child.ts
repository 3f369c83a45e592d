/**
 * A purge in a process of its own that kills itself (SIGKILL, no cleanup) once the engine has
 * checkpointed `killAfter` conversations (rule `messages`) or batches (rule `events`): the crash
 * half of the crash-and-rerun test.
 * Arguments: one JSON object { uri, database, strategy, prefix, tenant, now, batchSize, killAfter, rule? }.
 */
import { createDataClient, createDataLayer } from '@caas-db/core';
import { createTenancy } from '@caas-db/tenancy';
import { createLifecycle, manualClock } from '../src/index.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  uri: string;
  database: string;
  strategy: 'shared' | 'database';
  prefix: string;
  tenant: string;
  now: string;
  batchSize: number;
  killAfter: number;
  /** The rule to kill in (and the only one run, when not `messages`). @default 'messages' */
  rule?: 'messages' | 'events';
};
const rule = args.rule ?? 'messages';
const client = createDataClient({ uri: args.uri, database: args.database });
const tenancy = createTenancy({
  requireActiveTenant: false,
  strategy: args.strategy === 'database' ? { default: 'database', databasePrefix: args.prefix } : {},
});
const lifecycle = createLifecycle({ clock: manualClock(new Date(args.now)), batchSize: args.batchSize });
createDataLayer({ client, plugins: [tenancy, lifecycle] });
let checkpointed = 0;
lifecycle.on('progress', (event) => {
  // A messages progress event with a position, and every events progress event, follows a checkpoint.
  if (event.rule === rule && (rule !== 'messages' || event.position !== null) && ++checkpointed === args.killAfter) {
    process.stdout.write(`killed after ${event.position}\n`);
    process.kill(process.pid, 'SIGKILL');
  }
});
await lifecycle.purge(args.tenant, rule === 'messages' ? {} : { rules: [rule] });
process.stdout.write('finished without being killed\n');
await client.close();
