import { createTestDataLayer, refusalCheck, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { ObjectId, TenantContextError, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');

const expectNoWrites = refusalCheck(data.client, ValidationError);

describe('events', () => {
  it('records events and lists them by type and range', async () => {
    const day = new Date('2026-11-26T00:00:00Z');
    const user = new ObjectId();
    await acme.events.createMany(
      Array.from({ length: 6 }, (_, index) => ({
        type: index % 2 ? 'message.sent' : 'user.active',
        user_id: user,
        occurred_at: new Date(day.getTime() + index * 3_600_000),
        properties: { n: index },
      })),
    );
    await globex.events.create({ type: 'message.sent', occurred_at: day });
    const range = { from: day, to: new Date(day.getTime() + 86_400_000) };
    const sent = await acme.events.listByType('message.sent', range);
    expect(sent.items.map((event) => event.properties?.n)).toEqual([5, 3, 1]);
    expect((await acme.events.listInRange(range, { limit: 4 })).items).toHaveLength(4);
    await expectNoWrites(() => acme.events.create({ type: 'Message Sent', occurred_at: day }));
    await expectNoWrites(() => acme.events.create({ type: 'x.y', occurred_at: day, properties: { $inc: 1 } }));
    await expect(data.events.listByType('message.sent', range)).rejects.toBeInstanceOf(TenantContextError);
  });
});

describe('metrics', () => {
  it('is a time-series collection where the server has them, a plain one otherwise, with the same API', async () => {
    const report = await acme.metrics.syncIndexes();
    expect(report.timeSeries).toBe(testEnvironment().capabilities.timeSeries);
    const at = new Date('2026-11-26T10:00:00Z');
    await acme.metrics.record('messages.sent', 5, { tags: { region: 'eu' }, at });
    await acme.metrics.recordMany([
      { name: 'messages.sent', value: 7, at: new Date(at.getTime() + 60_000) },
      { name: 'latency.p99', value: 42, at },
    ]);
    await globex.metrics.record('messages.sent', 1000, { at });
    const page = await acme.metrics.query('messages.sent', { from: at, to: new Date(at.getTime() + 3_600_000) });
    expect(page.items.map((metric) => metric.value)).toEqual([7, 5]);
    expect(page.items[1]?.tags).toEqual({ region: 'eu' });
    await expectNoWrites(() => acme.metrics.record('Bad Name', 1));
    await expectNoWrites(() => acme.metrics.record('ok.name', Number.NaN));
    await expectNoWrites(() =>
      acme.metrics.recordMany([
        { name: 'ok', value: 1 },
        { name: 'ok', value: Number.POSITIVE_INFINITY },
      ]),
    );
    const surface = acme.metrics as unknown as Record<string, unknown>;
    for (const method of ['update', 'delete', 'softDelete']) expect(surface[method]).toBeUndefined();
  });
});

describe('aggregations', () => {
  it('keeps rollups exact under concurrent increments and reads them back', async () => {
    await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        acme.aggregations.increment('daily_messages', '2026-11-26', index % 2 ? 'direct' : 'group', { messages: 1, bytes: 10 }),
      ),
    );
    expect(await acme.aggregations.get('daily_messages', '2026-11-26', 'direct')).toEqual({ messages: 15, bytes: 150 });
    expect(await acme.aggregations.get('daily_messages', '2026-11-26', 'group')).toEqual({ messages: 15, bytes: 150 });
    expect(await globex.aggregations.get('daily_messages', '2026-11-26', 'direct')).toEqual({});
    await acme.aggregations.increment('daily_messages', '2026-11-27', 'direct', { messages: 2 });
    const days = await acme.aggregations.listPeriods('daily_messages', '2026-11-01', '2026-11-30');
    expect(days.map((row) => `${row.period}/${row.key}`)).toEqual(['2026-11-26/direct', '2026-11-26/group', '2026-11-27/direct']);
    await expectNoWrites(() => acme.aggregations.increment('daily_messages', '26/11/2026', 'direct', { messages: 1 }));
    await expectNoWrites(() => acme.aggregations.increment('daily_messages', '2026-11-26', 'direct', {}));
    await expectNoWrites(() => acme.aggregations.increment('daily_messages', '2026-11-26', 'direct', { $set: 1 }));
  });
});
