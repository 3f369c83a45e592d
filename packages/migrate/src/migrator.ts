import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { type DataLayer, DuplicateKeyError, parseConfig } from '@caas-db/core';
import { z } from 'zod';
import { discoverMigrations, loadMigration, type MigrationFile } from './discover.js';
import {
  MigrationFailedError,
  MigrationInterruptedError,
  MigrationInvalidError,
  MigrationLockedError,
  MigrationLockLostError,
  MigrationLockTimeoutError,
} from './errors.js';
import { MigrationLock } from './lock.js';
import type { BatchResult, Migration, MigrationContext, UpgradableRepository } from './migration.js';
import { type MigrationRecord, MigrationRecordRepository, migrationRecordsDefinition, type StepCheckpoint } from './records.js';

/** What a migrator reports while it runs. */
export type MigrationEvent =
  | { type: 'start'; migration: string; tenant: string | undefined; direction: 'up' | 'down'; resumed: boolean }
  | {
      type: 'progress';
      migration: string;
      tenant: string | undefined;
      step: string;
      batches: number;
      documents: number;
      total: number | undefined;
    }
  | { type: 'done'; migration: string; tenant: string | undefined; direction: 'up' | 'down'; durationMS: number }
  | { type: 'log'; migration: string; tenant: string | undefined; message: string }
  | { type: 'changed'; migration: string; tenant: string | undefined }
  /** A run with `wait` found the lock held and polls for it. */
  | { type: 'waiting'; holder: string; expiresAt: Date; waitedMS: number };

/** Options of {@link createMigrator}. */
export interface MigratorOptions {
  /** The data layer to migrate (with the tenancy plugin, tenant runs go to each tenant's database). */
  data: DataLayer;
  /** The folder of migration files. */
  directory: string;
  /** The tenants tenant-scoped migrations run for. @default the active clients */
  tenants?: () => Promise<string[]>;
  /** Recorded as who ran each migration. @default `user@host` */
  runBy?: string;
  /** How long the lock is held without renewal; a crashed runner's lock frees after it. @default 60000 */
  leaseMS?: number;
  /** Documents per batch of `upgradeDocuments`. @default 1000 */
  batchSize?: number;
  /** The clock (leases, records). @default () => new Date() */
  now?: () => Date;
  /** Receives start, progress, done, log and changed events. */
  onEvent?: (event: MigrationEvent) => void;
}

const optionsSchema = z.strictObject({
  data: z.custom<DataLayer>((value) => typeof value === 'object' && value !== null && 'repository' in value, 'must be a DataLayer'),
  directory: z.string().min(1),
  tenants: z.custom<() => Promise<string[]>>((value) => typeof value === 'function').optional(),
  runBy: z.string().min(1).max(256).optional(),
  leaseMS: z.number().int().min(1000).max(3_600_000).optional(),
  batchSize: z.number().int().min(1).max(10_000).optional(),
  now: z.custom<() => Date>((value) => typeof value === 'function').optional(),
  onEvent: z.custom<(event: MigrationEvent) => void>((value) => typeof value === 'function').optional(),
});

/** States `status` reports. `changed`: applied, but the file differs from what ran. */
export type MigrationState = 'applied' | 'pending' | 'changed' | 'running' | 'interrupted' | 'failed' | 'rolled_back';

/** One migration on one target, as `status` reports it. */
export interface MigrationStatus {
  id: string;
  scope: 'platform' | 'tenant';
  /** The tenant, for tenant-scoped migrations. */
  tenant: string | undefined;
  state: MigrationState;
  description: string | undefined;
  ranBy: string | undefined;
  appliedAt: Date | undefined;
  durationMS: number | undefined;
  /** Batches and documents done so far, per step (resumable runs). */
  checkpoints: Record<string, StepCheckpoint>;
}

/** Options of one `up` or `down` run. */
export interface RunOptions {
  /** Only plan: report what would run, take no lock, run nothing, write nothing. */
  dryRun?: boolean;
  /** Stops the run at the next batch boundary (SIGINT in the CLI); `up` again resumes. */
  signal?: AbortSignal;
  /** `up`: stop after this migration id. */
  to?: string;
  /** `down`: how many applied migrations to roll back (latest first). @default 1 */
  steps?: number;
  /**
   * When another runner holds the lock, wait up to this many milliseconds for it (polling), then
   * run what is still pending (what the other runner applied is not run again). 0 fails fast with
   * `MigrationLockedError`. @default 0
   */
  wait?: number;
}

/** What one run did (or, for a dry run, would do). */
export interface RunReport {
  /** Targets run, in order. */
  ran: Array<{ migration: string; tenant: string | undefined; resumed: boolean }>;
  /** Applied migrations whose files changed since (not re-run). */
  changed: Array<{ migration: string; tenant: string | undefined }>;
}

const runOptionsSchema = z.strictObject({
  dryRun: z.boolean().optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal).optional(),
  to: z.string().min(1).optional(),
  steps: z.number().int().min(1).optional(),
  wait: z
    .number()
    .int()
    .min(0)
    .max(24 * 60 * 60 * 1000)
    .optional(),
});

/** Runs a folder of migrations against a data layer. */
export interface Migrator {
  /** Every migration on every target: applied, pending, changed, interrupted, failed. */
  status(): Promise<MigrationStatus[]>;
  /**
   * Applies pending migrations in id order (and resumes interrupted ones from their checkpoint)
   * under the lease lock.
   * @throws {MigrationLockedError} when another runner holds the lock (and `wait` is 0, or `signal`
   * stopped the wait): nothing ran.
   * @throws {MigrationLockTimeoutError} when `wait` ran out with the lock still held: nothing ran.
   * @throws {MigrationInterruptedError} when `signal` stopped it at a batch boundary.
   * @throws {MigrationFailedError} when a migration threw.
   */
  up(options?: RunOptions): Promise<RunReport>;
  /** Rolls back the latest `steps` applied migrations (every target of each) with their `down`. */
  down(options?: RunOptions): Promise<RunReport>;
}

interface Target {
  file: MigrationFile;
  migration: Migration;
  tenant: string | undefined;
}

function defaultRunBy(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `pid ${process.pid}@${hostname()}`;
  }
}

/**
 * A migrator over a folder of migration files (see docs/migrations.md).
 * @throws {ConfigError} for invalid options.
 *
 * @example
 * ```ts
 * const migrator = createMigrator({ data, directory: 'migrations' });
 * await migrator.up();
 * console.table(await migrator.status());
 * ```
 */
export function createMigrator(options: MigratorOptions): Migrator {
  parseConfig(optionsSchema, options);
  const { data } = options;
  const now = options.now ?? (() => new Date());
  const runBy = options.runBy ?? defaultRunBy();
  const leaseMS = options.leaseMS ?? 60_000;
  const records = data.repository(migrationRecordsDefinition, MigrationRecordRepository);
  const emit = (event: MigrationEvent) => options.onEvent?.(event);
  let prepared: Promise<void> | undefined;
  const prepare = () => {
    prepared ??= records.syncIndexes().then(() => undefined);
    return prepared;
  };

  const tenants = async (): Promise<string[]> => {
    if (options.tenants) return [...(await options.tenants())].sort();
    const found: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await data.clients.listByStatus('active', { limit: 500, ...(cursor && { cursor }) });
      found.push(...page.items.map((client) => client.tenant_id));
      cursor = page.nextCursor;
    } while (cursor);
    return found.sort();
  };

  const targets = async (): Promise<Target[]> => {
    const files = await discoverMigrations(options.directory);
    const loaded: Target[] = [];
    let tenantList: string[] | undefined;
    for (const file of files) {
      const migration = await loadMigration(file);
      if ((migration.scope ?? 'platform') === 'platform') {
        loaded.push({ file, migration, tenant: undefined });
        continue;
      }
      tenantList ??= await tenants();
      for (const tenant of tenantList) loaded.push({ file, migration, tenant });
    }
    return loaded;
  };

  const key = (migration: string, tenant: string | undefined) => `${migration}\u0000${tenant ?? ''}`;
  const recordsByKey = async () =>
    new Map((await records.all()).map((record) => [key(record.migration, record.tenant || undefined), record]));

  const stateOf = (record: MigrationRecord | undefined, checksum: string): MigrationState => {
    if (!record) return 'pending';
    if (record.status === 'applied') return record.checksum === checksum ? 'applied' : 'changed';
    return record.status;
  };

  /** Runs `up` or `down` of one target under the lock, recording it. */
  const runTarget = async (
    target: Target,
    direction: 'up' | 'down',
    existing: MigrationRecord | undefined,
    lock: MigrationLock,
    signal: AbortSignal,
  ): Promise<boolean> => {
    const { file, migration, tenant } = target;
    const started = now();
    const resumed = direction === 'up' && existing !== undefined && existing.status !== 'rolled_back';
    const checkpoints: Record<string, StepCheckpoint> = resumed ? { ...existing.checkpoints } : {};
    const fields = {
      scope: (migration.scope ?? 'platform') as 'platform' | 'tenant',
      checksum: file.checksum,
      status: 'running' as const,
      ran_by: runBy,
      started_at: started,
      checkpoints,
    };
    let record: MigrationRecord;
    if (existing) {
      record = (await records.updateWith(existing._id as string, {
        $set: fields,
        $unset: { error: '', finished_at: '', duration_ms: '' },
      })) as MigrationRecord;
    } else {
      try {
        record = (await records.create({ migration: file.id, tenant: tenant ?? '', ...fields })) as MigrationRecord;
      } catch (error) {
        // Only a runner without the lock could have created it: the lease was lost.
        if (error instanceof DuplicateKeyError) throw new MigrationLockLostError(`Record of ${file.id} appeared during the run`);
        throw error;
      }
    }
    emit({ type: 'start', migration: file.id, tenant, direction, resumed });
    const context: MigrationContext = {
      data,
      tenant,
      repositories: tenant === undefined ? undefined : data.forTenant(tenant),
      signal,
      log: (message) => emit({ type: 'log', migration: file.id, tenant, message }),
      batches: async (step, batch, stepOptions = {}) => {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(step))
          throw new MigrationInvalidError(`Step name ${JSON.stringify(step)} must match [A-Za-z0-9_-]{1,64}`);
        let checkpoint: StepCheckpoint = checkpoints[step] ?? { after: null, batches: 0, documents: 0, done: false };
        while (!checkpoint.done) {
          if (signal.aborted) throw new MigrationInterruptedError(file.id, tenant);
          const result: BatchResult = await batch(checkpoint.after);
          checkpoint = {
            after: result.lastId,
            batches: checkpoint.batches + 1,
            documents: checkpoint.documents + result.processed,
            done: result.lastId === null,
          };
          checkpoints[step] = checkpoint;
          // The checkpoint and the lease move together: a runner that lost its lease stops here.
          await records.updateWith(record._id as string, { $set: { [`checkpoints.${step}`]: checkpoint } });
          await lock.renew();
          emit({
            type: 'progress',
            migration: file.id,
            tenant,
            step,
            batches: checkpoint.batches,
            documents: checkpoint.documents,
            total: stepOptions.total,
          });
        }
        return checkpoint;
      },
      upgradeDocuments: async (repository: UpgradableRepository, upgradeOptions = {}) => {
        const total = await repository.count({}, { includeDeleted: true });
        const batchSize = upgradeOptions.batchSize ?? options.batchSize ?? 1000;
        return context.batches(
          upgradeOptions.step ?? `upgrade-${repository.name}`,
          async (after) => {
            const batch = await repository.upgradeStored({ batchSize, after });
            return { lastId: batch.lastId ? batch.lastId.toHexString() : null, processed: batch.scanned };
          },
          { total },
        );
      },
    };
    try {
      if (direction === 'up') await migration.up(context);
      else await migration.down?.(context);
    } catch (error) {
      const interrupted = error instanceof MigrationInterruptedError || error instanceof MigrationLockLostError;
      await records.updateWith(record._id as string, {
        $set: {
          status: interrupted ? 'interrupted' : 'failed',
          error: (error instanceof Error ? error.message : String(error)).slice(0, 4096),
        },
      });
      if (interrupted) throw error;
      throw new MigrationFailedError(file.id, tenant, error);
    }
    const finished = now();
    const durationMS = finished.getTime() - started.getTime();
    await records.updateWith(record._id as string, {
      $set: { status: direction === 'up' ? 'applied' : 'rolled_back', finished_at: finished, duration_ms: durationMS },
    });
    emit({ type: 'done', migration: file.id, tenant, direction, durationMS });
    return resumed;
  };

  /**
   * Takes the lock, polling for up to `waitMS` while another runner holds it. Elapsed time is
   * measured on the monotonic clock: `now` is for leases, and may be a test's fixed clock.
   */
  const acquire = async (lock: MigrationLock, waitMS: number, signal: AbortSignal): Promise<void> => {
    const started = performance.now();
    // Often enough that a waiting deploy starts soon after the holder finishes, rarely enough to cost nothing.
    const pollMS = Math.min(1000, Math.max(50, Math.floor(leaseMS / 20)));
    for (;;) {
      try {
        await lock.acquire();
        return;
      } catch (error) {
        if (!(error instanceof MigrationLockedError) || waitMS === 0 || signal.aborted) throw error;
        const waitedMS = Math.round(performance.now() - started);
        if (waitedMS >= waitMS) throw new MigrationLockTimeoutError(error.holder, waitedMS);
        emit({ type: 'waiting', holder: error.holder, expiresAt: error.expiresAt, waitedMS });
        await pause(Math.min(pollMS, waitMS - waitedMS), signal);
      }
    }
  };

  /** Holds the lock around `work`, renewing it on a timer too (long batches). */
  const locked = async <T>(runOptions: RunOptions, signal: AbortSignal, work: (lock: MigrationLock) => Promise<T>): Promise<T> => {
    const lock = new MigrationLock(data, { name: 'migrations', holder: `${runBy}#${randomUUID()}`, leaseMS, now });
    await lock.prepare();
    await acquire(lock, runOptions.wait ?? 0, signal);
    const timer = setInterval(() => lock.renew().catch(() => undefined), Math.max(1000, Math.floor(leaseMS / 3)));
    timer.unref();
    try {
      return await work(lock);
    } finally {
      clearInterval(timer);
      await lock.release().catch(() => undefined);
    }
  };

  return {
    async status() {
      await prepare();
      const [all, byKey] = await Promise.all([targets(), recordsByKey()]);
      return all.map(({ file, migration, tenant }) => {
        const record = byKey.get(key(file.id, tenant));
        return {
          id: file.id,
          scope: migration.scope ?? 'platform',
          tenant,
          state: stateOf(record, file.checksum),
          description: migration.description,
          ranBy: record?.ran_by,
          appliedAt: record?.finished_at,
          durationMS: record?.duration_ms,
          checkpoints: record?.checkpoints ?? {},
        };
      });
    },

    async up(runOptions = {}) {
      parseConfig(runOptionsSchema, runOptions);
      await prepare();
      const signal = runOptions.signal ?? new AbortController().signal;
      const plan = async () => {
        const [all, byKey] = await Promise.all([targets(), recordsByKey()]);
        if (runOptions.to !== undefined && !all.some((target) => target.file.id === runOptions.to))
          throw new MigrationInvalidError(`No migration ${runOptions.to} in ${options.directory}`);
        const report: RunReport = { ran: [], changed: [] };
        const pending: Array<{ target: Target; record: MigrationRecord | undefined }> = [];
        for (const target of all) {
          if (runOptions.to !== undefined && target.file.id > runOptions.to) continue;
          const record = byKey.get(key(target.file.id, target.tenant));
          const state = stateOf(record, target.file.checksum);
          if (state === 'changed') report.changed.push({ migration: target.file.id, tenant: target.tenant });
          if (state === 'applied' || state === 'changed') continue;
          pending.push({ target, record });
        }
        return { report, pending };
      };
      if (runOptions.dryRun) {
        const { report, pending } = await plan();
        for (const { target, record } of pending)
          report.ran.push({
            migration: target.file.id,
            tenant: target.tenant,
            resumed: record !== undefined && record.status !== 'rolled_back',
          });
        return report;
      }
      return locked(runOptions, signal, async (lock) => {
        // Planned under the lock: what another runner applied meanwhile is not run again.
        const { report, pending } = await plan();
        for (const change of report.changed) emit({ type: 'changed', ...change });
        for (const { target, record } of pending) {
          if (signal.aborted) throw new MigrationInterruptedError(target.file.id, target.tenant);
          const resumed = await runTarget(target, 'up', record, lock, signal);
          report.ran.push({ migration: target.file.id, tenant: target.tenant, resumed });
        }
        return report;
      });
    },

    async down(runOptions = {}) {
      parseConfig(runOptionsSchema, runOptions);
      await prepare();
      const signal = runOptions.signal ?? new AbortController().signal;
      const plan = async () => {
        const [all, byKey] = await Promise.all([targets(), recordsByKey()]);
        const appliedIds = [
          ...new Set(
            all.filter((target) => byKey.get(key(target.file.id, target.tenant))?.status === 'applied').map((target) => target.file.id),
          ),
        ]
          .sort()
          .reverse()
          .slice(0, runOptions.steps ?? 1);
        const chosen = all
          .filter((target) => appliedIds.includes(target.file.id) && byKey.get(key(target.file.id, target.tenant))?.status === 'applied')
          .sort((a, b) => (a.file.id === b.file.id ? 0 : a.file.id < b.file.id ? 1 : -1));
        for (const target of chosen) {
          if (!target.migration.down) throw new MigrationInvalidError(`Migration ${target.file.id} has no down`);
        }
        return chosen.map((target) => ({ target, record: byKey.get(key(target.file.id, target.tenant)) }));
      };
      const report: RunReport = { ran: [], changed: [] };
      if (runOptions.dryRun) {
        for (const { target } of await plan()) report.ran.push({ migration: target.file.id, tenant: target.tenant, resumed: false });
        return report;
      }
      return locked(runOptions, signal, async (lock) => {
        for (const { target, record } of await plan()) {
          if (signal.aborted) throw new MigrationInterruptedError(target.file.id, target.tenant);
          await runTarget(target, 'down', record, lock, signal);
          report.ran.push({ migration: target.file.id, tenant: target.tenant, resumed: false });
        }
        return report;
      });
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts (the caller then tries once more and stops). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
