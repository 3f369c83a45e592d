import { compareIndexes, type Document, type IndexDrift, Repository, type RepositoryDefinition } from '@caas-db/core';
import type { z } from 'zod';
import type { CliCommand } from '../command.js';
import { ExitCodes } from '../exit-codes.js';
import { activeTenants } from './tenants-of.js';

/** Reads a collection's indexes through the pipeline (the repository base exposes no listing). */
class IndexInspector extends Repository<z.ZodObject> {
  listIndexes(): Promise<Document[]> {
    return this.collection.listIndexes('listIndexes');
  }
}

/** One collection's comparison; `tenant` names the tenant database (database strategy). */
interface DiffEntry {
  collection: string;
  tenant?: string;
  drift: IndexDrift;
}

function describeDrift({ collection, tenant, drift }: DiffEntry): string[] {
  const where = tenant ? `${tenant}: ${collection}` : collection;
  return [
    ...drift.missing.map((index) => `${where}: missing ${index.name}`),
    ...drift.extra.map((name) => `${where}: extra ${name}`),
    ...drift.different.map((difference) => `${where}: different ${difference.name}`),
  ];
}

/** `caas-db indexes sync|diff`. */
export const indexesCommand: CliCommand = {
  name: 'indexes',
  register(program, run) {
    const indexes = program.command('indexes').description('compare or create the declared indexes');

    indexes
      .command('sync')
      .description('create missing declared indexes (and in each tenant database under the database strategy)')
      .option('--drop-extra', 'drop indexes no declaration names')
      .option('--rebuild-different', 'drop and recreate indexes that differ from their declaration')
      .action(
        run(async (context, options: { dropExtra?: boolean; rebuildDifferent?: boolean }) => {
          const { data, tenancy } = await context.connect();
          const settings = { ...(options.dropExtra && { dropExtra: true }), ...(options.rebuildDifferent && { rebuildDifferent: true }) };
          const reports = await data.syncIndexes(settings);
          const tenants: Record<string, number> = {};
          if (context.config.strategy === 'database') {
            for (const tenant of await activeTenants(data)) {
              if (context.signal.aborted) break;
              tenants[tenant] = (await tenancy.provisionTenant(tenant)).reduce((sum, report) => sum + report.created.length, 0);
            }
          }
          const created = reports.flatMap((report) => report.created.map((name) => `${report.collection}.${name}`));
          const dropped = reports.flatMap((report) => report.dropped.map((name) => `${report.collection}.${name}`));
          context.output.result({ created, dropped, tenants }, () =>
            [
              created.length ? `Created: ${created.join(', ')}` : 'No index to create.',
              ...(dropped.length ? [`Dropped: ${dropped.join(', ')}`] : []),
              ...Object.entries(tenants).map(([tenant, count]) => `Tenant ${tenant}: ${count} created`),
            ].join('\n'),
          );
          return ExitCodes.OK;
        }),
      );

    indexes
      .command('diff')
      .description(
        'compare declared and existing indexes (and in each active tenant database under the database strategy); exit code 3 when they differ',
      )
      .action(
        run(async (context) => {
          const { data } = await context.connect();
          const definitions = Object.values(data)
            .map((value) => (value as { definition?: RepositoryDefinition<z.ZodObject> } | null)?.definition)
            .filter((definition): definition is RepositoryDefinition<z.ZodObject> => definition !== undefined);
          const report: DiffEntry[] = [];
          for (const definition of definitions) {
            const existing = await data.repository(definition, IndexInspector).listIndexes();
            report.push({ collection: definition.collection, drift: compareIndexes(definition.indexes, existing) });
          }
          // As `sync` does: under the database strategy each tenant's collections live in its own
          // database (the tenancy plugin routes a tenant-bound repository there).
          if (context.config.strategy === 'database') {
            const owned = definitions.filter((definition) => definition.tenantOwned);
            for (const tenant of await activeTenants(data)) {
              if (context.signal.aborted) break;
              for (const definition of owned) {
                const existing = await data.repository(definition, IndexInspector, tenant).listIndexes();
                report.push({ collection: definition.collection, tenant, drift: compareIndexes(definition.indexes, existing) });
              }
            }
          }
          const lines = report.flatMap(describeDrift);
          context.output.result(report, () => (lines.length ? lines.join('\n') : 'Indexes match their declarations.'));
          return lines.length ? ExitCodes.DRIFT : ExitCodes.OK;
        }),
      );
  },
};
