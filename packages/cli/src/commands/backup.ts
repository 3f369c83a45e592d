import { createLocalKeyProvider, filesystemTarget, type KeyProvider } from '@caas-db/archive';
import { type BackupService, createBackupService, type RestoreSelection } from '@caas-db/backup';
import { BSON, ConfigError } from '@caas-db/core';
import { Option } from 'commander';
import type { CliCommand } from '../command.js';
import type { Connection } from '../context.js';
import { ExitCodes } from '../exit-codes.js';

/**
 * The key provider of the CLI: `CAAS_DB_BACKUP_KEYS` (JSON of key id → base64 of 32 bytes) and
 * `CAAS_DB_BACKUP_KEY_ID` (the id new backups are wrapped with). Services use their KMS instead.
 */
function keyProviderFromEnvironment(env: NodeJS.ProcessEnv): KeyProvider {
  const keys = env.CAAS_DB_BACKUP_KEYS;
  const current = env.CAAS_DB_BACKUP_KEY_ID;
  if (!keys || !current)
    throw new ConfigError([
      {
        path: 'CAAS_DB_BACKUP_KEYS',
        message: 'set it (JSON: key id → base64 of 32 bytes) and CAAS_DB_BACKUP_KEY_ID',
        code: 'invalid_type',
      },
    ]);
  let parsed: Record<string, string>;
  try {
    parsed = JSON.parse(keys) as Record<string, string>;
  } catch (error) {
    throw new ConfigError([{ path: 'CAAS_DB_BACKUP_KEYS', message: 'must be JSON', code: 'invalid_format' }], { cause: error });
  }
  return createLocalKeyProvider({
    keys: Object.fromEntries(Object.entries(parsed).map(([id, key]) => [id, Buffer.from(key, 'base64')])),
    current,
  });
}

async function serviceOf(connection: Connection, directory: string, tenant?: string): Promise<BackupService> {
  const database = tenant === undefined ? undefined : await connection.tenancy.databaseOf(tenant);
  return createBackupService({
    data: connection.data,
    target: filesystemTarget(directory),
    keyProvider: keyProviderFromEnvironment(process.env),
    ...(database !== undefined && { databaseOf: () => database }),
  });
}

const directoryOption = () => new Option('--dir <path>', 'the backup directory').makeOptionMandatory();

/** `caas-db backup create|verify|list`, `caas-db restore`, `caas-db pitr restore --to <time>` (see docs/backup-recovery.md). */
export const backupCommand: CliCommand = {
  name: 'backup',
  register(program, run) {
    const backup = program.command('backup').description('per-tenant encrypted backups (keys: CAAS_DB_BACKUP_KEYS, CAAS_DB_BACKUP_KEY_ID)');
    backup
      .command('create')
      .description('back up one tenant')
      .requiredOption('--tenant <id>', 'the tenant')
      .addOption(directoryOption())
      .action(
        run(async (context, options: { tenant: string; dir: string }) => {
          const service = await serviceOf(await context.connect(), options.dir, options.tenant);
          const progress = context.output.progress('backup');
          const result = await service.create({
            tenant: options.tenant,
            onProgress: ({ collection, documents }) => progress.update(documents, undefined, collection),
          });
          progress.stop();
          context.output.result(
            {
              name: result.name,
              documents: result.documents,
              storedBytes: result.storedBytes,
              durationMS: result.durationMS,
              counts: result.metadata.counts,
            },
            () =>
              `${result.name}: ${result.documents} documents, ${result.storedBytes} bytes stored in ${(result.durationMS / 1000).toFixed(1)} s`,
          );
          return ExitCodes.OK;
        }),
      );
    backup
      .command('verify <name>')
      .description('check a backup without restoring it (integrity, counts, model schemas)')
      .addOption(directoryOption())
      .action(
        run(async (context, name: string, options: { dir: string }) => {
          const verification = await (await serviceOf(await context.connect(), options.dir)).verify(name);
          context.output.result(verification, () =>
            [
              `${name}: ${verification.documents} documents in ${verification.chunks} chunks, sha256 ${verification.sha256}`,
              `counts ${verification.countsAgree ? 'agree' : 'DIFFER'}; ${verification.schemaChecked} documents checked, ${verification.schemaProblems.length} schema problems`,
              ...verification.schemaProblems.map((problem) => `  ${problem.collection} ${problem.id}: ${problem.problem}`),
            ].join('\n'),
          );
          return verification.countsAgree && verification.schemaProblems.length === 0 ? ExitCodes.OK : ExitCodes.DRIFT;
        }),
      );
    backup
      .command('list')
      .description('list backups')
      .option('--tenant <id>', 'only this tenant')
      .addOption(directoryOption())
      .action(
        run(async (context, options: { tenant?: string; dir: string }) => {
          const listings = await (await serviceOf(await context.connect(), options.dir)).list(options.tenant);
          context.output.result(
            listings,
            () =>
              listings
                .map((listing) => `${listing.name}  ${listing.createdAt}  ${listing.documents} documents  key ${listing.keyId}`)
                .join('\n') || 'No backups.',
          );
          return ExitCodes.OK;
        }),
      );

    program
      .command('restore <name>')
      .description('restore a backup (whole or partial), verified; rerun to resume an interrupted restore')
      .addOption(directoryOption())
      .option('--tenant <id>', 'restore into this tenant (default: the backup’s)')
      .addOption(new Option('--mode <mode>', 'replace the tenant’s documents, or merge').choices(['replace', 'merge']).default('replace'))
      .option('--conversation <id>', 'only this conversation')
      .option('--user <id>', 'only this user’s data')
      .option('--from <time>', 'only documents created at or after this ISO time')
      .option('--to <time>', 'only documents created before this ISO time')
      .addOption(
        new Option('--ids <mode>', 'keep the backup’s ids, or remap them (a copy beside its source in shared collections)')
          .choices(['keep', 'remap'])
          .default('keep'),
      )
      .action(
        run(
          async (
            context,
            name: string,
            options: {
              dir: string;
              tenant?: string;
              mode: 'replace' | 'merge';
              conversation?: string;
              user?: string;
              from?: string;
              to?: string;
              ids: 'keep' | 'remap';
            },
          ) => {
            const service = await serviceOf(await context.connect(), options.dir, options.tenant);
            const select: RestoreSelection | undefined = options.conversation
              ? { conversationId: options.conversation }
              : options.user
                ? { userId: options.user }
                : options.from || options.to
                  ? { ...(options.from && { from: new Date(options.from) }), ...(options.to && { to: new Date(options.to) }) }
                  : undefined;
            const progress = context.output.progress('restore');
            const result = await service.restore({
              name,
              ...(options.tenant && { tenant: options.tenant }),
              mode: options.mode,
              ids: options.ids,
              ...(select && { select }),
              onProgress: ({ collection, documents }) => progress.update(documents, undefined, collection),
            });
            progress.stop();
            context.output.result(result, () =>
              [
                `${result.backup} → ${result.tenant} (${result.mode}, ${result.selection})${result.resumed ? ', resumed' : ''}: verified in ${(result.durationMS / 1000).toFixed(1)} s`,
                ...Object.entries(result.inserted).map(
                  ([collection, count]) => `  ${collection}: ${count} inserted, ${result.removed[collection] ?? 0} removed first`,
                ),
                ...(result.verification?.inheritedDrift ?? []).map((drift) => `  drift already in the backup: ${drift}`),
              ].join('\n'),
            );
            return ExitCodes.OK;
          },
        ),
      );

    program
      .command('pitr')
      .description('point-in-time recovery')
      .command('restore')
      .description('bring a tenant to its state at a moment: full backup + journal replay')
      .requiredOption('--tenant <id>', 'the tenant')
      .requiredOption('--to <time>', 'an ISO time, or a cluster time t.i')
      .option('--into <id>', 'restore into this tenant id instead (a copy)')
      .addOption(
        new Option('--ids <mode>', 'with --into: keep the ids, or remap them (a copy beside its source in shared collections)')
          .choices(['keep', 'remap'])
          .default('keep'),
      )
      .addOption(directoryOption())
      .action(
        run(async (context, options: { tenant: string; to: string; into?: string; ids: 'keep' | 'remap'; dir: string }) => {
          if (options.ids === 'remap' && options.into === undefined)
            throw new ConfigError([
              { path: 'ids', message: '--ids remap needs --into <id> (a copy under another tenant id)', code: 'custom' },
            ]);
          const service = await serviceOf(await context.connect(), options.dir, options.into ?? options.tenant);
          const clusterTime = /^(\d+)\.(\d+)$/.exec(options.to);
          const to = clusterTime ? new BSON.Timestamp({ t: Number(clusterTime[1]), i: Number(clusterTime[2]) }) : new Date(options.to);
          if (to instanceof Date && Number.isNaN(to.getTime()))
            throw new ConfigError([{ path: 'to', message: 'must be an ISO time or a cluster time t.i', code: 'invalid_format' }]);
          const result = await service.restoreToPointInTime({
            tenant: options.tenant,
            to,
            ...(options.into && { into: options.into, ids: options.ids }),
          });
          context.output.result(
            result,
            () =>
              `${options.tenant} at ${result.to}: backup ${result.backup} + ${result.changesReplayed} changes from ${result.segments} journal segments`,
          );
          return ExitCodes.OK;
        }),
      );
  },
};
