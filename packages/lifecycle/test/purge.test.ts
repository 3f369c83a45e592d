import { ObjectId } from '@caas-db/core';
import { describe, expect, it } from 'vitest';
import { DAY_MS, DocumentRateLimiter, type PurgeProgress } from '../src/index.js';
import { DAYS, expectedAfterPurge, generateMonth, type Month, monthPolicy } from './fixtures.js';
import { START, setupLifecycle, strategies } from './support.js';

describe.each(strategies)('purge by policy (%s strategy)', (strategy) => {
  const tenant = `month-${strategy}`;
  const other = `other-${strategy}`;
  const shares = `shares-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant, other, shares], { batchSize: 7 });
  const { data, lifecycle, clock } = setup;
  let month: Month;
  let otherMonth: Month;

  it('keeps exactly what the policy keeps after a month of data, the other tenant untouched', async () => {
    month = await generateMonth(data, clock, tenant, 2);
    otherMonth = await generateMonth(data, clock, other, 1, 5);
    await lifecycle.policies.set(tenant, monthPolicy);
    for (const [conversation, rule] of month.overrides) await lifecycle.policies.setForConversation(tenant, conversation, rule);
    const now = new Date(START.getTime() + DAYS * DAY_MS);
    clock.set(now);

    const before = await setup.raw(tenant, 'messages');
    const dry = await lifecycle.purge(tenant, { dryRun: true });
    expect(await setup.raw(tenant, 'messages')).toEqual(before);

    const progress: PurgeProgress[] = [];
    const off = lifecycle.on('progress', (event) => progress.push(event));
    const report = await lifecycle.purge(tenant);
    off();
    expect(report.counts).toEqual(dry.counts);
    expect(progress.length).toBeGreaterThan(1);

    const expected = expectedAfterPurge(month, now);
    const messages = await setup.raw(tenant, 'messages');
    expect(messages.map((message) => String(message._id)).sort()).toEqual([...expected.keptMessages.keys()].sort());
    for (const message of messages) {
      const purged = expected.keptMessages.get(String(message._id))?.purged;
      expect(message.content.encrypted_data === undefined, `content of ${message._id} purged`).toBe(purged);
      if (purged) {
        // The tombstone: ids, conversation, sender, status and receipts stay; ciphertext, keys and preview go.
        expect(message.content).toEqual({ type: 'text' });
        expect(message.status).toBe('deleted');
        expect(message.conversation_id).toBeInstanceOf(ObjectId);
      }
    }
    expect(report.counts.messages).toBe(month.messages.length - expected.keptMessages.size);
    const events = await setup.raw(tenant, 'events');
    expect(events.map((event) => String(event._id)).sort()).toEqual([...expected.keptEvents].sort());
    const files = await setup.raw(tenant, 'files');
    expect(
      files
        .filter((file) => file.sharing.type === 'private')
        .map((file) => String(file._id))
        .sort(),
    ).toEqual([...expected.privateFiles].sort());

    // last_message names the newest live message of each conversation after the purge.
    for (const conversation of month.conversations)
      expect((await data.forTenant(tenant).messages.verifyLastMessage(conversation.id)).consistent).toBe(true);
    // The other tenant has no policy: nothing of it was purged.
    expect(await setup.raw(other, 'messages')).toHaveLength(otherMonth.messages.length);

    const audit = await data.auditLogs.listForTenant(tenant);
    const runs = audit.items.filter((entry) => entry.action === 'lifecycle.purge');
    expect(runs).toHaveLength(2);
    expect(runs.map((entry) => entry.details?.dry_run).sort()).toEqual([false, true]);
  });

  it('runs again idempotently: nothing more to purge', async () => {
    const report = await lifecycle.purge(tenant);
    expect(report.counts).toEqual({ messages: 0, deletedContent: 0, events: 0, fileShares: 0, metrics: 0 });
  });

  it('refuses invalid input with typed errors, writing nothing', async () => {
    await expect(lifecycle.policies.set(tenant, { messages: { keepDays: -1 } })).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(lifecycle.purge('Not A Tenant')).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(lifecycle.purge(tenant, { rules: ['everything' as never] })).rejects.toMatchObject({ code: 'E_VALIDATION' });
    expect((await lifecycle.policies.get(tenant)).messages.keepDays).toBe(14);
  });

  it('purges tenants concurrently without interfering', async () => {
    clock.advance(20 * DAY_MS);
    await lifecycle.policies.set(other, { messages: { keepDays: 1 }, events: { keepDays: 1 } });
    const [mine, theirs] = await Promise.all([lifecycle.purge(tenant), lifecycle.purge(other)]);
    expect(theirs.counts.messages).toBe(otherMonth.messages.length);
    expect(await setup.raw(other, 'messages')).toHaveLength(0);
    // Channel messages (20 days) and the forever conversation remain for the first tenant.
    const left = await setup.raw(tenant, 'messages');
    expect(left.every((message) => String(message.conversation_id) === String(month.conversations[4]?.id))).toBe(true);
    expect(mine.counts.messages).toBeGreaterThan(0);
  });

  it('expires file shares in bounded batches, with progress after each', async () => {
    const files = data.forTenant(shares).files;
    const uploader = new ObjectId();
    const expiry = new Date(clock().getTime() - DAY_MS);
    const created = await Promise.all(
      Array.from({ length: 16 }, (_, index) =>
        files.create({
          uploader_id: uploader,
          storage: { provider: 's3', bucket: 'b', key: `${shares}/${index}` },
          metadata: { filename: `f${index}.png`, mime_type: 'image/png', size: 10, checksum: 'sha256:abcdefgh' },
          sharing: { type: 'public', expiry },
        }),
      ),
    );
    const progress: PurgeProgress[] = [];
    const off = lifecycle.on('progress', (event) => {
      if (event.tenant === shares) progress.push(event);
    });
    const report = await lifecycle.purge(shares, { rules: ['fileShares'] });
    off();
    expect(report.counts.fileShares).toBe(16);
    // 16 shares in batches of 7: 7, 14, 16.
    expect(progress.filter((event) => event.rule === 'fileShares').map((event) => event.processed)).toEqual([7, 14, 16]);
    const stored = await setup.raw(shares, 'files');
    expect(stored.map((file) => file.sharing)).toEqual(created.map(() => ({ type: 'private' })));
  });
});

describe('rate limiter', () => {
  it('paces documents per second per tenant on its own clock', async () => {
    let now = 0;
    const waits: number[] = [];
    const limiter = new DocumentRateLimiter(
      100,
      () => now,
      async (ms) => {
        waits.push(ms);
        now += ms;
      },
    );
    await limiter.take('a', 100);
    await limiter.take('a', 50);
    await limiter.take('b', 100);
    expect(waits).toEqual([500]);
    expect(now).toBe(500);
  });
});
