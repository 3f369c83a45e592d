import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  createMigrator,
  type MigrationEvent,
  MigrationInterruptedError,
  MigrationInvalidError,
  type Migrator,
  migrationFileName,
  migrationTemplate,
} from '@caas-db/migrate';
import { Option } from 'commander';
import type { CliCommand } from '../command.js';
import type { CommandContext } from '../context.js';
import { ExitCodes } from '../exit-codes.js';
import type { Progress } from '../output.js';

let typescript: Promise<void> | undefined;

/** `--wait <ms>`: a whole number; anything else reaches the migrator's validation (exit code 2). */
const milliseconds = (value: string) => (/^\d+$/.test(value) ? Number(value) : Number.NaN);

/** Migration files may be TypeScript: tsx's loader is registered before the first one is imported. */
function loadTypeScript(): Promise<void> {
  typescript ??= import('tsx/esm/api').then((tsx) => {
    tsx.register();
  });
  return typescript;
}

async function migratorOf(context: CommandContext, progress?: Progress): Promise<Migrator> {
  await loadTypeScript();
  const { data } = await context.connect();
  const { config, output } = context;
  const where = (event: { migration: string; tenant: string | undefined }) =>
    `${event.migration}${event.tenant ? ` [${event.tenant}]` : ''}`;
  let waiting = false;
  const onEvent = (event: MigrationEvent) => {
    if (event.type === 'waiting') {
      // Once: the wait polls every second or so.
      if (!waiting) output.note(`Waiting for the migration lock held by ${event.holder} (lease until ${event.expiresAt.toISOString()})`);
      waiting = true;
    } else if (event.type === 'progress') progress?.update(event.documents, event.total, `${where(event)} ${event.step}`);
    else if (event.type === 'start')
      output.note(`${event.direction === 'up' ? '→' : '←'} ${where(event)}${event.resumed ? ' (resuming)' : ''}`);
    else if (event.type === 'done') output.note(`✓ ${where(event)} (${event.durationMS} ms)`);
    else if (event.type === 'log') output.note(`  ${where(event)}: ${event.message}`);
    else output.note(`! ${where(event)} changed since it was applied (not re-run)`);
  };
  return createMigrator({
    data,
    directory: config.migrations,
    leaseMS: config.leaseMS,
    batchSize: config.batchSize,
    ...(config.runBy && { runBy: config.runBy }),
    onEvent,
  });
}

function interrupted(context: CommandContext, error: unknown): number | undefined {
  if (!(error instanceof MigrationInterruptedError)) return undefined;
  context.output.note(`Interrupted: ${error.message}.`);
  context.output.note('Every finished batch is recorded. Resume with: caas-db migrate up');
  context.output.result({ interrupted: true, migration: error.migration, tenant: error.tenant ?? null }, () => 'interrupted');
  return ExitCodes.INTERRUPTED;
}

/** `caas-db migrate up|down|status|create`. */
export const migrateCommand: CliCommand = {
  name: 'migrate',
  register(program, run) {
    const migrate = program.command('migrate').description('run, roll back, inspect and create migrations (docs/migrations.md)');

    migrate
      .command('up')
      .description('apply pending migrations in order, resuming interrupted ones from their checkpoint')
      .option('--dry-run', 'list what would run; take no lock, write nothing')
      .option('--to <id>', 'stop after this migration')
      .option('--wait <ms>', 'wait up to this long for the migration lock held by another runner (default: fail at once)', milliseconds)
      .action(
        run(async (context, options: { dryRun?: boolean; to?: string; wait?: number }) => {
          const progress = context.output.progress('migrate');
          const migrator = await migratorOf(context, progress);
          try {
            const report = await migrator.up({
              signal: context.signal,
              ...(options.dryRun && { dryRun: true }),
              ...(options.to && { to: options.to }),
              ...(options.wait !== undefined && { wait: options.wait }),
            });
            progress.stop();
            context.output.result(report, () =>
              report.ran.length === 0
                ? 'Nothing to migrate.'
                : `${options.dryRun ? 'Would run' : 'Ran'} ${report.ran.length}: ${report.ran.map((entry) => `${entry.migration}${entry.tenant ? ` [${entry.tenant}]` : ''}`).join(', ')}`,
            );
            return ExitCodes.OK;
          } catch (error) {
            progress.stop();
            const code = interrupted(context, error);
            if (code !== undefined) return code as typeof ExitCodes.INTERRUPTED;
            throw error;
          }
        }),
      );

    migrate
      .command('down')
      .description('roll back the latest applied migrations with their down')
      .option('--steps <n>', 'how many migrations', (value) => Number.parseInt(value, 10), 1)
      .option('--dry-run', 'list what would be rolled back')
      .option('--wait <ms>', 'wait up to this long for the migration lock held by another runner (default: fail at once)', milliseconds)
      .action(
        run(async (context, options: { steps: number; dryRun?: boolean; wait?: number }) => {
          const migrator = await migratorOf(context);
          try {
            const report = await migrator.down({
              steps: options.steps,
              signal: context.signal,
              ...(options.dryRun && { dryRun: true }),
              ...(options.wait !== undefined && { wait: options.wait }),
            });
            context.output.result(report, () =>
              report.ran.length === 0 ? 'Nothing to roll back.' : `Rolled back: ${report.ran.map((entry) => entry.migration).join(', ')}`,
            );
            return ExitCodes.OK;
          } catch (error) {
            const code = interrupted(context, error);
            if (code !== undefined) return code as typeof ExitCodes.INTERRUPTED;
            throw error;
          }
        }),
      );

    migrate
      .command('status')
      .description('every migration on every target: applied, pending, changed, interrupted, failed')
      .action(
        run(async (context) => {
          const status = await (await migratorOf(context)).status();
          context.output.result(status, () =>
            status.length === 0
              ? `No migrations in ${context.config.migrations}.`
              : status
                  .map((entry) => {
                    const steps = Object.entries(entry.checkpoints)
                      .map(
                        ([step, checkpoint]) =>
                          `${step}: ${checkpoint.documents} docs in ${checkpoint.batches} batches${checkpoint.done ? '' : ' (partial)'}`,
                      )
                      .join('; ');
                    const ran = entry.ranBy ? ` by ${entry.ranBy}${entry.appliedAt ? ` at ${entry.appliedAt.toISOString()}` : ''}` : '';
                    const took = entry.durationMS !== undefined ? ` in ${entry.durationMS} ms` : '';
                    return `${entry.state.padEnd(11)} ${entry.id}${entry.tenant ? ` [${entry.tenant}]` : ''}${ran}${took}${steps ? ` — ${steps}` : ''}`;
                  })
                  .join('\n'),
          );
          return ExitCodes.OK;
        }),
      );

    migrate
      .command('create <name>')
      .description('write a new migration file (timestamped) into the migrations folder')
      .addOption(new Option('--scope <scope>', 'run once, or once per tenant').choices(['platform', 'tenant']).default('platform'))
      .action(
        run(async (context, name: string, options: { scope: 'platform' | 'tenant' }) => {
          const folder = resolve(context.config.migrations);
          const file = join(folder, migrationFileName(name));
          await mkdir(folder, { recursive: true });
          await writeFile(file, migrationTemplate(options.scope), { flag: 'wx' }).catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'EEXIST') throw new MigrationInvalidError(`${file} already exists`);
            throw error;
          });
          context.output.result({ file }, () => `Created ${file}`);
          return ExitCodes.OK;
        }),
      );
  },
};
