import { fileURLToPath } from 'node:url';
import { ConfigError, createDataClient, createDataLayer, Repository } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createTenancy } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createMigrator,
  type MigrationEvent,
  MigrationInterruptedError,
  MigrationInvalidError,
  MigrationLock,
  MigrationLockedError,
  MigrationLockLostError,
  MigrationLockTimeoutError,
  migrationFileName,
} from '../src/index.js';
import { itemsDefinition } from './fixtures/items.js';
import { ticketsV1 } from './fixtures/tickets.js';

const fixtures = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const client = createTestClient();
const data = createDataLayer({ client });

/** A second service instance: its own connection to the same database. */
function secondInstance() {
  const other = createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName() });
  afterAll(() => other.close());
  return createDataLayer({ client: other });
}

describe('the migration lock', () => {
  it('lets one of two concurrent runners run; the other fails clearly and runs nothing', async () => {
    let entered = () => {};
    let open = () => {};
    const gate = { runs: 0, entered: () => entered(), gate: new Promise<void>((resolve) => (open = resolve)) };
    (globalThis as { __caasGate?: unknown }).__caasGate = gate;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const first = createMigrator({ data, directory: fixtures('blocking'), runBy: 'deploy-1' });
    const second = createMigrator({ data: secondInstance(), directory: fixtures('blocking'), runBy: 'deploy-2' });
    const running = first.up();
    await inside;
    const refused = await second.up().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(MigrationLockedError);
    expect((refused as MigrationLockedError).holder).toMatch(/^deploy-1#/);
    open();
    expect((await running).ran).toHaveLength(1);
    // Once the first released the lock, the second finds nothing left to run.
    expect((await second.up()).ran).toEqual([]);
    expect(gate.runs).toBe(1);
    const [status] = await second.status();
    expect(status).toMatchObject({ id: '001-blocking', state: 'applied', ranBy: 'deploy-1' });
    expect(status?.durationMS).toBeGreaterThanOrEqual(0);
  });

  it('with wait: the second runner waits for the lease, then runs what is left (nothing); exactly one ran the migration', async () => {
    const database = `${testDatabaseName()}_wait`;
    const one = createDataLayer({ client: createTestClient({ database }) });
    const other = createDataClient({ uri: testEnvironment().mongo.uri, database });
    afterAll(() => other.close());
    let entered = () => {};
    let open = () => {};
    const gate = { runs: 0, entered: () => entered(), gate: new Promise<void>((resolve) => (open = resolve)) };
    (globalThis as { __caasGate?: unknown }).__caasGate = gate;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const first = createMigrator({ data: one, directory: fixtures('blocking'), runBy: 'deploy-1' });
    const events: MigrationEvent[] = [];
    const second = createMigrator({
      data: createDataLayer({ client: other }),
      directory: fixtures('blocking'),
      runBy: 'deploy-2',
      onEvent: (event) => events.push(event),
    });
    const running = first.up();
    await inside;
    const waiting = second.up({ wait: 600_000 });
    // The second found the lock held and is polling for it.
    await waitFor(() => events.filter((event) => event.type === 'waiting').length >= 2);
    expect(events.find((event) => event.type === 'waiting')).toMatchObject({
      type: 'waiting',
      holder: expect.stringMatching(/^deploy-1#/),
    });
    // A runner that does not wait still fails fast meanwhile.
    await expect(second.up()).rejects.toBeInstanceOf(MigrationLockedError);
    // One that waits less than the holder takes times out with a typed error, having run nothing.
    const timedOut = await second.up({ wait: 1 }).catch((error: unknown) => error);
    expect(timedOut).toBeInstanceOf(MigrationLockTimeoutError);
    expect(timedOut).toMatchObject({ code: 'E_MIGRATION_LOCK_TIMEOUT', holder: expect.stringMatching(/^deploy-1#/) });
    // Ctrl-C while waiting: it stops waiting; the lock was held, nothing ran.
    const controller = new AbortController();
    const seen = events.length;
    const abandoned = second.up({ wait: 600_000, signal: controller.signal }).catch((error: unknown) => error);
    await waitFor(() => events.slice(seen).some((event) => event.type === 'waiting'));
    controller.abort();
    expect(await abandoned).toBeInstanceOf(MigrationLockedError);
    open();
    const [ranFirst, ranSecond] = await Promise.all([running, waiting]);
    expect(ranFirst.ran).toHaveLength(1);
    expect(ranSecond.ran).toEqual([]);
    expect(gate.runs).toBe(1);
    await expect(second.up({ wait: -1 })).rejects.toBeInstanceOf(ConfigError);
  });

  it('with wait: of several runners started together, exactly one runs each migration', async () => {
    const database = `${testDatabaseName()}_race`;
    const gate = { runs: 0, entered: () => {}, gate: Promise.resolve() };
    (globalThis as { __caasGate?: unknown }).__caasGate = gate;
    const runners = Array.from({ length: 4 }, (_, index) => {
      const own = index === 0 ? createTestClient({ database }) : createDataClient({ uri: testEnvironment().mongo.uri, database });
      if (index > 0) afterAll(() => own.close());
      return createMigrator({ data: createDataLayer({ client: own }), directory: fixtures('blocking'), runBy: `deploy-${index}` });
    });
    const reports = await Promise.all(runners.map((runner) => runner.up({ wait: 600_000 })));
    expect(reports.flatMap((report) => report.ran)).toHaveLength(1);
    expect(gate.runs).toBe(1);
  });

  it('expires a crashed holder’s lease; the holder then finds it lost', async () => {
    const start = new Date('2026-11-30T10:00:00Z');
    const crashed = new MigrationLock(data, { name: 'lease-test', holder: 'crashed', leaseMS: 60_000, now: () => start });
    await crashed.prepare();
    await crashed.acquire();
    const early = new MigrationLock(data, {
      name: 'lease-test',
      holder: 'early',
      leaseMS: 60_000,
      now: () => new Date(start.getTime() + 59_000),
    });
    await expect(early.acquire()).rejects.toBeInstanceOf(MigrationLockedError);
    const later = new MigrationLock(data, {
      name: 'lease-test',
      holder: 'later',
      leaseMS: 60_000,
      now: () => new Date(start.getTime() + 61_000),
    });
    await later.acquire();
    await expect(crashed.renew()).rejects.toBeInstanceOf(MigrationLockLostError);
    await later.release();
    await early.acquire();
    await early.release();
  });

  it('concurrent acquisitions of a free lock: exactly one wins', async () => {
    const locks = Array.from({ length: 6 }, (_, index) => new MigrationLock(data, { name: 'race', holder: `r${index}`, leaseMS: 60_000 }));
    await locks[0]?.prepare();
    const outcomes = await Promise.allSettled(locks.map((lock) => lock.acquire()));
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    expect(
      outcomes.filter((outcome) => outcome.status === 'rejected').every((outcome) => outcome.reason instanceof MigrationLockedError),
    ).toBe(true);
  });
});

describe('batched migrations', () => {
  it('stops at a batch boundary when interrupted and resumes without repeating a batch', async () => {
    const items = data.repository(itemsDefinition, Repository);
    await items.createMany(Array.from({ length: 45 }, (_, n) => ({ n })));
    const log: Array<string | null> = [];
    (globalThis as { __caasBatches?: unknown }).__caasBatches = log;
    const controller = new AbortController();
    const events: MigrationEvent[] = [];
    const migrator = createMigrator({
      data,
      directory: fixtures('batched'),
      onEvent: (event) => {
        events.push(event);
        if (event.type === 'progress' && event.batches === 2) controller.abort();
      },
    });
    expect((await migrator.up({ dryRun: true })).ran.map((run) => run.migration)).toEqual(['001-touch-items', '002-after']);
    const stopped = await migrator.up({ signal: controller.signal }).catch((error: unknown) => error);
    expect(stopped).toBeInstanceOf(MigrationInterruptedError);
    expect(log).toHaveLength(2);
    const interrupted = (await migrator.status()).find((status) => status.id === '001-touch-items');
    expect(interrupted).toMatchObject({ state: 'interrupted', checkpoints: { touch: { batches: 2, documents: 20, done: false } } });
    expect((await migrator.status()).find((status) => status.id === '002-after')?.state).toBe('pending');

    const report = await migrator.up();
    expect(report.ran).toEqual([
      { migration: '001-touch-items', tenant: undefined, resumed: true },
      { migration: '002-after', tenant: undefined, resumed: false },
    ]);
    // Batches 3..5 ran once each, starting after batch 2's last id; no batch ran twice.
    expect(log).toHaveLength(5);
    expect(new Set(log).size).toBe(5);
    const all = await items.findMany({}, { limit: 100 });
    expect(all.items.map((item) => item.touched)).toEqual(Array(45).fill(1));
    expect(events.some((event) => event.type === 'log' && event.message === 'second migration ran')).toBe(true);

    const down = await migrator.down();
    expect(down.ran).toEqual([{ migration: '002-after', tenant: undefined, resumed: false }]);
    expect((await migrator.status()).find((status) => status.id === '002-after')?.state).toBe('rolled_back');
    // The first has no down: rolling it back is refused before anything runs.
    await expect(migrator.down()).rejects.toBeInstanceOf(MigrationInvalidError);
  });
});

describe('tenant migrations', () => {
  it('upgrades each tenant’s documents, recorded and resumable per tenant', async () => {
    for (const tenant of ['t-a', 't-b']) {
      const tickets = data.repository(ticketsV1, Repository, tenant);
      for (let index = 0; index < 15; index += 1) await tickets.create({ title: `${tenant} ${index}` });
    }
    const migrator = createMigrator({ data, directory: fixtures('tenants'), tenants: async () => ['t-b', 't-a'] });
    const report = await migrator.up();
    expect(report.ran.map((run) => run.tenant)).toEqual(['t-a', 't-b']);
    const status = await migrator.status();
    expect(status.map((entry) => [entry.tenant, entry.state])).toEqual([
      ['t-a', 'applied'],
      ['t-b', 'applied'],
    ]);
    expect(status[0]?.checkpoints['upgrade-tickets']).toMatchObject({ documents: 15, done: true });
    const raw = data.repository(ticketsV1, Repository, 't-a');
    expect((await raw.findMany({ schema_version: 1 } as never)).items).toEqual([]);
    // A new tenant appears: only its run is pending.
    const withC = createMigrator({ data, directory: fixtures('tenants'), tenants: async () => ['t-a', 't-b', 't-c'] });
    expect((await withC.up({ dryRun: true })).ran).toEqual([{ migration: '001-upgrade-tickets', tenant: 't-c', resumed: false }]);
  });
});

describe('input validation', () => {
  it('refuses bad options and missing folders before doing anything', async () => {
    expect(() => createMigrator({ data, directory: '' })).toThrow(ConfigError);
    expect(() => createMigrator({ data, directory: 'x', leaseMS: 5 })).toThrow(ConfigError);
    await expect(createMigrator({ data, directory: fixtures('nope') }).status()).rejects.toBeInstanceOf(MigrationInvalidError);
    await expect(createMigrator({ data, directory: fixtures('batched') }).up({ steps: 0 })).rejects.toBeInstanceOf(ConfigError);
    await expect(createMigrator({ data, directory: fixtures('batched') }).up({ to: 'missing' })).rejects.toBeInstanceOf(
      MigrationInvalidError,
    );
    expect(() => migrationFileName('Bad Name')).toThrow(MigrationInvalidError);
    expect(migrationFileName('add-priority', new Date('2026-11-30T12:34:56Z'))).toBe('20261130123456-add-priority.ts');
  });
});

describe('tenant migrations under the database-per-tenant strategy', () => {
  it('migrates each tenant’s own database; records and lock stay in the platform database', async () => {
    const prefix = `m${testDatabaseName().slice(-6)}`;
    const tenancy = createTenancy({ audit: 'off', strategy: { default: 'database', databasePrefix: prefix } });
    const routed = createDataLayer({ client, plugins: [tenancy] });
    const tenants = ['db-a', 'db-b'];
    try {
      for (const tenant of tenants) {
        await routed.clients.create({ tenant_id: tenant, name: tenant, region: 'eu-west-1', plan: 'enterprise' });
        const tickets = routed.repository(ticketsV1, Repository, tenant);
        for (let index = 0; index < 9; index += 1) await tickets.create({ title: `${tenant} ${index}` });
      }
      const migrator = createMigrator({ data: routed, directory: fixtures('tenants') });
      expect((await migrator.up()).ran.map((run) => run.tenant)).toEqual(tenants);
      for (const tenant of tenants) {
        const database = await tenancy.databaseOf(tenant);
        expect(database).not.toBe(testDatabaseName());
        const stored = await unsafeDatabase(client, database).collection('tickets').find({}).toArray();
        expect(stored.map((ticket) => [ticket.schema_version, ticket.priority])).toEqual(Array(9).fill([2, 0]));
      }
      const records = await unsafeDatabase(client)
        .collection('caas_migrations')
        .find({ tenant: { $in: tenants } })
        .toArray();
      expect(records.map((record) => [record.tenant, record.status]).sort()).toEqual([
        ['db-a', 'applied'],
        ['db-b', 'applied'],
      ]);
    } finally {
      for (const tenant of tenants) await routed.admin.dropDatabase(await tenancy.databaseOf(tenant));
    }
  });
});
