import { createRequire } from 'node:module';
import { ConfigError, ConnectionError, isCaasDbError, TimeoutError, ValidationError } from '@caas-db/core';
import { MigrationInterruptedError, MigrationInvalidError, MigrationLockedError, MigrationLockTimeoutError } from '@caas-db/migrate';
import { Command, CommanderError } from 'commander';
import type { ActionRunner, CliCommand } from './command.js';
import { commands as builtIn } from './commands/index.js';
import { createContext } from './context.js';
import { type ExitCode, ExitCodes } from './exit-codes.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** The exit code a failure maps to (see {@link ExitCodes}). */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof ConfigError || error instanceof ValidationError || error instanceof MigrationInvalidError) return ExitCodes.USAGE;
  if (error instanceof MigrationLockedError || error instanceof MigrationLockTimeoutError) return ExitCodes.LOCKED;
  if (error instanceof MigrationInterruptedError) return ExitCodes.INTERRUPTED;
  if (error instanceof ConnectionError || error instanceof TimeoutError) return ExitCodes.UNREACHABLE;
  return ExitCodes.FAILURE;
}

/**
 * The `caas-db` program with `commands` registered (the built-in ones by default). `exitCode()`
 * is the outcome of the last action run.
 */
export function createProgram(commands: readonly CliCommand[] = builtIn): { program: Command; exitCode: () => ExitCode } {
  let exitCode: ExitCode = ExitCodes.OK;
  const program = new Command('caas-db')
    .description('caas-db: migrations, indexes, seed data, verification and tenants of a caas-db deployment')
    .version(version)
    .option('--uri <uri>', 'MongoDB connection string (env MONGODB_URI)')
    .option('--database <name>', 'platform database (env CAAS_DB_DATABASE)', undefined)
    .option('--config <file>', 'config file, JSON or YAML (env CAAS_DB_CONFIG; default caas-db.config.{json,yaml,yml})')
    .option('--migrations <dir>', 'migrations folder (env CAAS_DB_MIGRATIONS)')
    .option('--strategy <strategy>', 'tenancy strategy: shared or database (env CAAS_DB_STRATEGY)')
    .option('--run-by <who>', 'recorded as who ran migrations (env CAAS_DB_RUN_BY)')
    .option('--json', 'machine-readable output on stdout (progress and notes go to stderr)')
    .showHelpAfterError()
    .exitOverride();

  const run: ActionRunner =
    (action) =>
    async (...args) => {
      const command = args.at(-1) as Command;
      let close: (() => Promise<void>) | undefined;
      try {
        const created = createContext(command);
        close = created.close;
        exitCode = (await action(created.context, ...(args.slice(0, -1) as never))) ?? ExitCodes.OK;
      } catch (error) {
        exitCode = exitCodeOf(error);
        const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
        const message = error instanceof Error ? error.message : String(error);
        const code = isCaasDbError(error) ? error.code : undefined;
        if (json) process.stdout.write(`${JSON.stringify({ error: { code: code ?? null, message } }, null, 2)}\n`);
        process.stderr.write(`caas-db: ${code ? `${code} ` : ''}${message}\n`);
        if (error instanceof MigrationLockedError)
          process.stderr.write('Another runner holds the migration lock; try again when it finished, or wait for it with --wait <ms>.\n');
      } finally {
        await close?.().catch(() => undefined);
      }
    };

  for (const command of commands) command.register(program, run);
  return { program, exitCode: () => exitCode };
}

/**
 * Runs `caas-db` with `argv` (as `process.argv`: node, script, arguments).
 * @returns the exit code (see docs/cli.md).
 */
export async function main(argv: readonly string[] = process.argv): Promise<ExitCode> {
  const { program, exitCode } = createProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version'
        ? ExitCodes.OK
        : ExitCodes.USAGE;
    }
    throw error;
  }
  return exitCode();
}
