import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DAY_MS } from '../src/index.js';
import { DAYS, expectedAfterPurge, generateMonth, monthPolicy } from './fixtures.js';
import { START, setupLifecycle, strategies } from './support.js';

const child = fileURLToPath(new URL('./purge-child.ts', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs the child purge; resolves with its output and how it ended. */
function runChild(args: object): Promise<{ signal: NodeJS.Signals | null; code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, ['--import', 'tsx', child, JSON.stringify(args)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    process_.stdout.on('data', (chunk) => {
      output += chunk;
    });
    process_.stderr.on('data', (chunk) => {
      output += chunk;
    });
    process_.on('error', reject);
    process_.on('exit', (code, signal) => resolve({ code, signal, output }));
  });
}

describe.each(strategies)('a purge killed mid-run and run again (%s strategy)', (strategy) => {
  const tenant = `crash-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant], { batchSize: 5 });
  const { data, lifecycle, clock } = setup;

  it('resumes from its checkpoint and ends exactly where an uninterrupted purge ends', async () => {
    const month = await generateMonth(data, clock, tenant, 1);
    await lifecycle.policies.set(tenant, monthPolicy);
    for (const [conversation, rule] of month.overrides) await lifecycle.policies.setForConversation(tenant, conversation, rule);
    const now = new Date(START.getTime() + DAYS * DAY_MS);
    clock.set(now);

    const killed = await runChild({
      uri: testEnvironment().mongo.uri,
      database: testDatabaseName(),
      strategy,
      prefix: `l${strategy[0]}${testDatabaseName().slice(-6)}`,
      tenant,
      now: now.toISOString(),
      batchSize: 5,
      killAfter: 2,
    });
    expect(killed.signal, killed.output).toBe('SIGKILL');
    const [checkpoint] = await setup.raw(tenant, 'lifecycle_checkpoints', { task: 'purge:messages' });
    expect(String(checkpoint?.position)).toBe(
      String(month.conversations.map((entry) => entry.id).sort((a, b) => String(a).localeCompare(String(b)))[1]),
    );
    // Mid-run: some expired messages are gone, some are still there.
    const expected = expectedAfterPurge(month, now);
    const between = await setup.raw(tenant, 'messages');
    expect(between.length).toBeLessThan(month.messages.length);
    expect(between.length).toBeGreaterThan(expected.keptMessages.size);

    const rerun = await lifecycle.purge(tenant);
    expect(rerun.resumedAfter).toBe(String(checkpoint?.position));
    const messages = await setup.raw(tenant, 'messages');
    expect(messages.map((message) => String(message._id)).sort()).toEqual([...expected.keptMessages.keys()].sort());
    for (const message of messages)
      expect(message.content.encrypted_data === undefined).toBe(expected.keptMessages.get(String(message._id))?.purged);
    expect(await setup.raw(tenant, 'lifecycle_checkpoints')).toEqual([]);
    for (const conversation of month.conversations)
      expect((await data.forTenant(tenant).messages.verifyLastMessage(conversation.id)).consistent).toBe(true);
  });
});

describe.each(strategies)('an events purge killed mid-run and run again (%s strategy)', (strategy) => {
  const tenant = `crash-events-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant], { batchSize: 5 });
  const { data, lifecycle, clock } = setup;

  it('checkpoints each batch per tenant and collection, resumes there and ends where an uninterrupted purge ends', async () => {
    const month = await generateMonth(data, clock, tenant, 1);
    await lifecycle.policies.set(tenant, monthPolicy);
    const now = new Date(START.getTime() + DAYS * DAY_MS);
    clock.set(now);
    const expected = expectedAfterPurge(month, now);
    expect(month.events.length - expected.keptEvents.size).toBeGreaterThan(10);

    const killed = await runChild({
      uri: testEnvironment().mongo.uri,
      database: testDatabaseName(),
      strategy,
      prefix: `l${strategy[0]}${testDatabaseName().slice(-6)}`,
      tenant,
      now: now.toISOString(),
      batchSize: 5,
      killAfter: 2,
      rule: 'events',
    });
    expect(killed.signal, killed.output).toBe('SIGKILL');
    const [checkpoint] = await setup.raw(tenant, 'lifecycle_checkpoints', { task: 'purge:events' });
    // Two batches of 5 removed, the checkpoint at the last of them (oldest first).
    const oldest = [...month.events].sort(
      (a, b) => a.occurred.getTime() - b.occurred.getTime() || String(a.id).localeCompare(String(b.id)),
    );
    expect(String(checkpoint?.position)).toBe(String(oldest[9]?.id));
    expect(await setup.raw(tenant, 'events')).toHaveLength(month.events.length - 10);

    const rerun = await lifecycle.purge(tenant, { rules: ['events'] });
    expect(rerun.resumed).toEqual(['events']);
    expect(rerun.counts.events).toBe(month.events.length - expected.keptEvents.size - 10);
    expect((await setup.raw(tenant, 'events')).map((event) => String(event._id)).sort()).toEqual([...expected.keptEvents].sort());
    expect(await setup.raw(tenant, 'lifecycle_checkpoints')).toEqual([]);
  });
});
