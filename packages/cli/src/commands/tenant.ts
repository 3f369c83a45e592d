import { DuplicateKeyError, plans } from '@caas-db/core';
import { Option } from 'commander';
import type { CliCommand } from '../command.js';
import { ExitCodes } from '../exit-codes.js';
import { tenantsIn } from './tenants-of.js';

/** `caas-db tenant provision|list|suspend|activate`. */
export const tenantCommand: CliCommand = {
  name: 'tenant',
  register(program, run) {
    const tenant = program.command('tenant').description('tenants (SaaS clients): provision, list, suspend, activate');

    tenant
      .command('provision <tenant>')
      .description('register a tenant (idempotent) and create its indexes where its data lives')
      .requiredOption('--name <name>', 'display name')
      .requiredOption('--region <region>', 'data residency, e.g. eu-west-1')
      .addOption(new Option('--plan <plan>', 'plan').choices([...plans]).default('free'))
      .action(
        run(async (context, id: string, options: { name: string; region: string; plan: (typeof plans)[number] }) => {
          const { data, tenancy } = await context.connect();
          // The unique index on tenant_id is what makes provisioning idempotent: make sure it exists.
          await data.clients.syncIndexes();
          let created = true;
          try {
            await data.clients.create({ tenant_id: id, name: options.name, region: options.region, plan: options.plan });
          } catch (error) {
            if (!(error instanceof DuplicateKeyError)) throw error;
            created = false;
          }
          const reports = await tenancy.provisionTenant(id);
          const database = await tenancy.databaseOf(id);
          const indexes = reports.reduce((sum, report) => sum + report.created.length, 0);
          context.output.result(
            { tenant: id, created, database, indexesCreated: indexes },
            () => `${created ? 'Provisioned' : 'Already provisioned:'} ${id} in database ${database} (${indexes} indexes created)`,
          );
          return ExitCodes.OK;
        }),
      );

    tenant
      .command('list')
      .description('tenants with their plan and status')
      .addOption(new Option('--status <status>', 'only this status').choices(['active', 'suspended']))
      .action(
        run(async (context, options: { status?: 'active' | 'suspended' }) => {
          const { data } = await context.connect();
          const statuses = options.status ? [options.status] : (['active', 'suspended'] as const);
          const tenants = (await Promise.all(statuses.map((status) => tenantsIn(data, status))))
            .flat()
            .sort((a, b) => (a.tenant < b.tenant ? -1 : 1));
          context.output.result(tenants, () =>
            tenants.length === 0
              ? 'No tenants.'
              : tenants
                  .map((entry) => `${entry.tenant.padEnd(24)} ${entry.status.padEnd(10)} ${entry.plan.padEnd(10)} ${entry.name}`)
                  .join('\n'),
          );
          return ExitCodes.OK;
        }),
      );

    tenant
      .command('suspend <tenant>')
      .description('suspend a tenant: its data stays, its requests are refused')
      .requiredOption('--reason <reason>', 'why (recorded on the client)')
      .action(
        run(async (context, id: string, options: { reason: string }) => {
          const { data } = await context.connect();
          const client = await data.clients.suspend(id, options.reason);
          context.output.result({ tenant: id, status: client.status }, () => `Suspended ${id}`);
          return ExitCodes.OK;
        }),
      );

    tenant
      .command('activate <tenant>')
      .description('reactivate a suspended tenant')
      .action(
        run(async (context, id: string) => {
          const { data } = await context.connect();
          const client = await data.clients.activate(id);
          context.output.result({ tenant: id, status: client.status }, () => `Activated ${id}`);
          return ExitCodes.OK;
        }),
      );
  },
};
