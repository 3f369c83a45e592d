import type { Command } from 'commander';
import type { CommandContext } from './context.js';
import type { ExitCode } from './exit-codes.js';

/**
 * Wraps a command's action: builds its {@link CommandContext} (configuration, output, Ctrl-C
 * signal, connection), runs it, closes the connection, and turns its outcome or error into the
 * documented exit code.
 */
export type ActionRunner = <Args extends unknown[]>(
  action: (context: CommandContext, ...args: Args) => Promise<ExitCode | undefined>,
) => (...args: [...Args, Command]) => Promise<void>;

/**
 * One top-level command of `caas-db`. A package adds its commands with one file under
 * `src/commands/` exporting a `CliCommand`, and one line in `src/commands/index.ts`.
 *
 * @example
 * ```ts
 * export const backupCommand: CliCommand = {
 *   name: 'backup',
 *   register(program, run) {
 *     program.command('backup').description('...').action(run(async ({ connect, output }) => { ... }));
 *   },
 * };
 * ```
 */
export interface CliCommand {
  readonly name: string;
  register(program: Command, run: ActionRunner): void;
}
