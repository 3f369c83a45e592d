import { type DriftKind, driftKinds, verifyTenants } from '@caas-db/migrate';
import { createAnalytics } from '@caas-db/search';
import { Option } from 'commander';
import type { CliCommand } from '../command.js';
import { ExitCodes } from '../exit-codes.js';
import { activeTenants } from './tenants-of.js';

/** `caas-db verify [--repair]`. */
export const verifyCommand: CliCommand = {
  name: 'verify',
  register(program, run) {
    program
      .command('verify')
      .description('check stored documents against the models and the denormalized invariants; exit code 3 on drift')
      .option('--repair', 'fix what can be fixed (everything but schema drift)')
      .option('--tenant <ids...>', 'only these tenants (default: every active tenant)')
      .addOption(new Option('--kinds <kinds...>', 'only these kinds of drift').choices([...driftKinds]))
      .option('--days <days...>', 'days (YYYY-MM-DD) whose rollups are checked (default: the last seven)')
      .action(
        run(async (context, options: { repair?: boolean; tenant?: string[]; kinds?: DriftKind[]; days?: string[] }) => {
          const { data, tenancy } = await context.connect();
          const tenants = options.tenant ?? (await activeTenants(data));
          const progress = context.output.progress('verify');
          const results = await verifyTenants({
            data,
            tenants,
            repair: options.repair ?? false,
            ...(options.kinds && { kinds: options.kinds }),
            ...(options.days && { days: options.days }),
            ...(tenancy.usage && { usage: tenancy.usage }),
            rollups: createAnalytics(data),
            signal: context.signal,
            onTenant: (verification, index, total) => progress.update(index + 1, total, verification.tenant),
          });
          progress.stop();
          const unresolved = results.flatMap((result) => result.drift.filter((entry) => entry.repaired !== true));
          context.output.result(
            results,
            () =>
              results
                .map((result) =>
                  [
                    `${result.tenant}: ${result.drift.length === 0 ? 'no drift' : `${result.drift.length} drifted`} (${result.scanned} documents scanned)`,
                    ...result.drift.map(
                      (entry) =>
                        `  ${entry.kind} ${entry.subject}: ${entry.detail}${entry.repaired ? ' — repaired' : entry.repairable ? '' : ' — needs a migration'}`,
                    ),
                  ].join('\n'),
                )
                .join('\n') || 'No tenants.',
          );
          if (results.length < tenants.length) {
            context.output.note(
              `Interrupted after ${results.length} of ${tenants.length} tenants. Resume with --tenant ${tenants.slice(results.length).join(' ')}`,
            );
            return ExitCodes.INTERRUPTED;
          }
          return unresolved.length > 0 ? ExitCodes.DRIFT : ExitCodes.OK;
        }),
      );
  },
};
