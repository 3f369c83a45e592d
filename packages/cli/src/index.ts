/**
 * @caas-db/cli: the `caas-db` command line. See docs/cli.md. Other packages add their commands as
 * a {@link CliCommand} (one file under `src/commands/`, one line in `src/commands/index.ts`).
 */
export type { ActionRunner, CliCommand } from './command.js';
export { commands } from './commands/index.js';
export { type CliConfig, type ConfigSources, cliConfigSchema, resolveConfig } from './config.js';
export type { CommandContext, Connection, GlobalOptions } from './context.js';
export { type ExitCode, ExitCodes } from './exit-codes.js';
export { Output, type Progress } from './output.js';
export { createProgram, exitCodeOf, main } from './program.js';
