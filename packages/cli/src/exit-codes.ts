/**
 * The exit codes of `caas-db`, stable across releases (see docs/cli.md). Scripts and deploy steps
 * branch on them.
 */
export const ExitCodes = {
  /** Done. */
  OK: 0,
  /** An unexpected failure (a migration threw, the server refused a command). */
  FAILURE: 1,
  /** Bad arguments or configuration: nothing was done. */
  USAGE: 2,
  /** `verify` found drift (without `--repair`, or drift that cannot be repaired). */
  DRIFT: 3,
  /** Another runner holds the migration lock: nothing ran. */
  LOCKED: 4,
  /** The database could not be reached. */
  UNREACHABLE: 5,
  /** Stopped by Ctrl-C (SIGINT) at a batch boundary; the command prints how to resume. */
  INTERRUPTED: 130,
} as const;

/** One of {@link ExitCodes}. */
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];
