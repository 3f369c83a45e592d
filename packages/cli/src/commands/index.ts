import type { CliCommand } from '../command.js';
import { backupCommand } from './backup.js';
import { indexesCommand } from './indexes.js';
import { lifecycleCommand } from './lifecycle.js';
import { migrateCommand } from './migrate.js';
import { seedCommand } from './seed.js';
import { tenantCommand } from './tenant.js';
import { verifyCommand } from './verify.js';

/** Every top-level command, in help order. Add a package's commands here (one line each). */
export const commands: readonly CliCommand[] = [
  migrateCommand,
  indexesCommand,
  seedCommand,
  verifyCommand,
  tenantCommand,
  backupCommand,
  lifecycleCommand,
];
