import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createLifecycle, type Lifecycle } from '@caas-db/lifecycle';
import type { CliCommand } from '../command.js';
import type { Connection } from '../context.js';
import { ExitCodes } from '../exit-codes.js';

/**
 * The lifecycle on the CLI's connection. Attached after the fact: its delete guard is not in this
 * data layer's pipeline (it guards services' deletes); purge, holds, export and erase do not need it.
 */
function lifecycleOf(connection: Connection, rate?: string): Lifecycle {
  const lifecycle = createLifecycle(rate === undefined ? {} : { rateLimit: { documentsPerSecond: Number(rate) } });
  lifecycle.attach?.(connection.data);
  return lifecycle;
}

const actorOf = (id: string) => ({ type: 'operator' as const, id });

/** `caas-db lifecycle purge|orphans|export-user|erase-user|hold` (see docs/lifecycle.md). */
export const lifecycleCommand: CliCommand = {
  name: 'lifecycle',
  register(program, run) {
    const lifecycle = program.command('lifecycle').description('retention, legal holds, export and erasure (docs/lifecycle.md)');
    lifecycle
      .command('purge')
      .description("apply a tenant's retention policy once")
      .requiredOption('--tenant <id>', 'the tenant')
      .option('--dry-run', 'count what would be removed; write nothing')
      .option('--rate <docs/s>', 'documents per second at most')
      .action(
        run(async (context, options: { tenant: string; dryRun?: boolean; rate?: string }) => {
          const report = await lifecycleOf(await context.connect(), options.rate).purge(options.tenant, {
            dryRun: options.dryRun === true,
          });
          context.output.result(report, () => `${options.tenant}${report.dryRun ? ' (dry run)' : ''}: ${JSON.stringify(report.counts)}`);
          return ExitCodes.OK;
        }),
      );
    lifecycle
      .command('orphans')
      .description('find (and with --repair fix) references to what no longer exists')
      .requiredOption('--tenant <id>', 'the tenant')
      .option('--repair', 'remove the dangling references')
      .action(
        run(async (context, options: { tenant: string; repair?: boolean }) => {
          const report = await lifecycleOf(await context.connect()).orphans(options.tenant, { repair: options.repair === true });
          context.output.result(report, () => JSON.stringify(report));
          return ExitCodes.OK;
        }),
      );
    lifecycle
      .command('export-user')
      .description('everything stored about one user, as NDJSON EJSON, and its manifest beside it')
      .requiredOption('--tenant <id>', 'the tenant')
      .requiredOption('--user <id>', 'the user id')
      .requiredOption('--out <file>', 'the NDJSON file (the manifest goes to <file>.manifest.json)')
      .action(
        run(async (context, options: { tenant: string; user: string; out: string }) => {
          const stream = createWriteStream(options.out);
          const manifest = await lifecycleOf(await context.connect()).exportUser(options.tenant, options.user, async (line) => {
            if (!stream.write(line)) await once(stream, 'drain');
          });
          stream.end();
          await once(stream, 'finish');
          await writeFile(`${options.out}.manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`);
          context.output.result(manifest, () => `${options.out}: ${JSON.stringify(manifest.counts)} (sha256 ${manifest.sha256})`);
          return ExitCodes.OK;
        }),
      );
    lifecycle
      .command('erase-user')
      .description('erase one user everywhere (refused under legal hold)')
      .requiredOption('--tenant <id>', 'the tenant')
      .requiredOption('--user <id>', 'the user id')
      .requiredOption('--actor <id>', 'who asked (for the audit entry)')
      .action(
        run(async (context, options: { tenant: string; user: string; actor: string }) => {
          const report = await lifecycleOf(await context.connect()).eraseUser(options.tenant, options.user, {
            actor: actorOf(options.actor),
          });
          context.output.result(report, () => `erased as ${report.erasureId}: ${JSON.stringify(report.counts)}`);
          return ExitCodes.OK;
        }),
      );
    const hold = lifecycle.command('hold').description('legal holds');
    hold
      .command('place')
      .requiredOption('--tenant <id>', 'the tenant')
      .requiredOption('--scope <scope>', 'tenant, user or conversation')
      .option('--target <id>', 'the user or conversation id')
      .requiredOption('--reason <text>', 'why')
      .requiredOption('--actor <id>', 'who places it')
      .action(
        run(async (context, options: { tenant: string; scope: string; target?: string; reason: string; actor: string }) => {
          const input =
            options.scope === 'user'
              ? { scope: 'user' as const, userId: options.target ?? '', reason: options.reason, actor: actorOf(options.actor) }
              : options.scope === 'conversation'
                ? {
                    scope: 'conversation' as const,
                    conversationId: options.target ?? '',
                    reason: options.reason,
                    actor: actorOf(options.actor),
                  }
                : { scope: options.scope as 'tenant', reason: options.reason, actor: actorOf(options.actor) };
          const placed = await lifecycleOf(await context.connect()).holds.place(options.tenant, input);
          context.output.result(placed, () => `hold ${placed.id} placed on ${placed.scope}${placed.target ? ` ${placed.target}` : ''}`);
          return ExitCodes.OK;
        }),
      );
    hold
      .command('release')
      .requiredOption('--tenant <id>', 'the tenant')
      .requiredOption('--id <hold>', 'the hold id')
      .requiredOption('--actor <id>', 'who releases it')
      .action(
        run(async (context, options: { tenant: string; id: string; actor: string }) => {
          const released = await lifecycleOf(await context.connect()).holds.release(options.tenant, options.id, actorOf(options.actor));
          context.output.result({ released }, () => (released ? `hold ${options.id} released` : `hold ${options.id} was not active`));
          return ExitCodes.OK;
        }),
      );
    hold
      .command('list')
      .requiredOption('--tenant <id>', 'the tenant')
      .option('--all', 'released holds too')
      .action(
        run(async (context, options: { tenant: string; all?: boolean }) => {
          const holds = await lifecycleOf(await context.connect()).holds.list(options.tenant, { includeReleased: options.all === true });
          context.output.result(holds, () =>
            holds.map((entry) => `${entry.id} ${entry.scope} ${entry.target ?? ''} ${entry.releasedAt ? 'released' : 'active'}`).join('\n'),
          );
          return ExitCodes.OK;
        }),
      );
  },
};
