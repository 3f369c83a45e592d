import { metricsDefinition } from '@caas-db/core';
import { describe, expect, it } from 'vitest';
import { CollectionAccess, DAY_MS } from '../src/index.js';
import { START, setupLifecycle, strategies } from './support.js';

const NAMES = ['api.calls', 'messages.sent', 'storage.bytes'];
const DAYS = 10;

describe.each(strategies)('metrics expire by policy (%s strategy)', (strategy) => {
  const tenant = `metrics-${strategy}`;
  const other = `metrics-other-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant, other], { batchSize: 4 });
  const { data, lifecycle, clock } = setup;

  /** One measurement per name, per day and per 6 hours: 3 × 10 × 4 = 120 per tenant. */
  const record = (target: string) =>
    data
      .forTenant(target)
      .metrics.recordMany(
        NAMES.flatMap((name) =>
          Array.from({ length: DAYS * 4 }, (_, index) => ({ name, value: index, at: new Date(START.getTime() + index * (DAY_MS / 4)) })),
        ),
      );

  it('removes exactly the measurements older than keepDays, other tenants untouched, with an audit entry', async () => {
    await record(tenant);
    await record(other);
    await lifecycle.policies.set(tenant, { metrics: { keepDays: 4 } });
    expect((await lifecycle.policies.get(tenant)).metrics).toEqual({ keepDays: 4 });
    const now = new Date(START.getTime() + DAYS * DAY_MS);
    clock.set(now);
    const cutoff = now.getTime() - 4 * DAY_MS;
    const expected = (await setup.raw(tenant, 'metrics'))
      .filter((metric) => (metric.timestamp as Date).getTime() >= cutoff)
      .map((metric) => String(metric._id))
      .sort();
    expect(expected).toHaveLength(3 * 4 * 4);

    const dry = await lifecycle.purge(tenant, { dryRun: true, rules: ['metrics'] });
    expect(dry.counts.metrics).toBe(120 - expected.length);
    expect(await setup.raw(tenant, 'metrics')).toHaveLength(120);

    const report = await lifecycle.purge(tenant, { rules: ['metrics'] });
    expect(report.counts.metrics).toBe(120 - expected.length);
    expect((await setup.raw(tenant, 'metrics')).map((metric) => String(metric._id)).sort()).toEqual(expected);
    expect(await setup.raw(other, 'metrics')).toHaveLength(120);
    expect(await setup.raw(tenant, 'lifecycle_checkpoints')).toEqual([]);

    const runs = (await data.auditLogs.listForTenant(tenant)).items.filter((entry) => entry.action === 'lifecycle.purge');
    expect(runs.map((entry) => (entry.details?.counts as Record<string, number> | undefined)?.metrics).sort()).toEqual([72, 72]);
    expect((await lifecycle.purge(tenant, { rules: ['metrics'] })).counts.metrics).toBe(0);
  });

  it('keeps metrics forever by default, and refuses an invalid metrics rule', async () => {
    expect((await lifecycle.policies.get(other)).metrics).toEqual({ keepDays: null });
    expect((await lifecycle.purge(other)).counts.metrics).toBe(0);
    await expect(lifecycle.policies.set(other, { metrics: { keepDays: -1 } })).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(lifecycle.policies.set(other, { metrics: { days: 3 } as never })).rejects.toMatchObject({ code: 'E_VALIDATION' });
    expect(await setup.raw(other, 'metrics')).toHaveLength(120);
  });

  it('stays append-only for everything but the expiry purge: the lifecycle grant alone deletes no metric', async () => {
    const access = data.repository(metricsDefinition as never, CollectionAccess, other) as CollectionAccess;
    await expect(access.rawDeleteMany('test.delete', { name: 'api.calls' })).rejects.toMatchObject({ code: 'E_INVARIANT' });
    expect(await setup.raw(other, 'metrics')).toHaveLength(120);
  });
});
