import { performance } from 'node:perf_hooks';
import {
  ConfigError,
  createDataLayer,
  type Middleware,
  ObjectId,
  resolveDataClientConfig,
  streamPages,
  TimeoutError,
  timeBudget,
  ValidationError,
} from '@caas-db/core';
import { unsafeDriver } from '@caas-db/core/unsafe';
import { waitFor } from '@caas-db/testing';
import { createTestClient } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';

/** Records, per operation, the budget left when the innermost layer ran, and the wire commands sent. */
function recording(client: ReturnType<typeof createTestClient>) {
  const budgets: Array<{ operation: string; left: number | undefined }> = [];
  const wire: Array<{ name: string; maxTimeMS: unknown }> = [];
  (unsafeDriver(client) as unknown as { monitorCommands: boolean }).monitorCommands = true;
  unsafeDriver(client).on('commandStarted', (event) => wire.push({ name: event.commandName, maxTimeMS: event.command.maxTimeMS }));
  const recorder: Middleware = {
    name: 'record-budget',
    phase: 'transport',
    handle(ctx, next) {
      budgets.push({ operation: ctx.operation, left: ctx.deadline === undefined ? undefined : ctx.deadline - performance.now() });
      return next();
    },
  };
  return { budgets, wire, recorder };
}

describe('time budget', () => {
  it('gives each operation class its budget and the driver the time left (every command reaches the server with maxTimeMS)', async () => {
    const client = createTestClient();
    const { budgets, wire, recorder } = recording(client);
    const data = createDataLayer({
      client,
      middlewares: [timeBudget({ readMS: 4_000, writeMS: 6_000, operations: { 'users.findOne': 8_000 } }), recorder],
    });
    const acme = data.forTenant('acme');
    await acme.users.create({ external_id: 'alice', profile: { display_name: 'Alice' } });
    await acme.users.findByExternalId('alice');
    await acme.users.count();
    const left = (operation: string) => budgets.find((budget) => budget.operation === operation)?.left ?? 0;
    expect(left('users.create')).toBeGreaterThan(4_000);
    expect(left('users.create')).toBeLessThanOrEqual(6_000);
    expect(left('users.findOne')).toBeGreaterThan(6_000);
    expect(left('users.count')).toBeLessThanOrEqual(4_000);
    const insert = wire.find((command) => command.name === 'insert');
    expect(typeof insert?.maxTimeMS).toBe('number');
    expect(insert?.maxTimeMS as number).toBeLessThanOrEqual(6_000);
    const find = wire.find((command) => command.name === 'find');
    expect(find?.maxTimeMS as number).toBeGreaterThan(6_000);
    expect(find?.maxTimeMS as number).toBeLessThanOrEqual(8_000);
  });

  it('fails with TimeoutError (E_TIMEOUT) once the budget is spent, before sending anything', async () => {
    const client = createTestClient();
    const { wire } = recording(client);
    // Holds the attempt until its deadline has passed: the outcome does not depend on the machine's speed.
    const holdPastDeadline: Middleware = {
      name: 'hold',
      phase: 'transport',
      async handle(ctx, next) {
        await waitFor(() => ctx.deadline !== undefined && performance.now() > ctx.deadline);
        return next();
      },
    };
    const data = createDataLayer({ client, middlewares: [timeBudget({ readMS: 50 }), holdPastDeadline] });
    const before = wire.length;
    const read = data.forTenant('acme').users.findByExternalId('nobody');
    await expect(read).rejects.toBeInstanceOf(TimeoutError);
    await expect(read).rejects.toMatchObject({ code: 'E_TIMEOUT' });
    expect(wire.slice(before).filter((command) => command.name === 'find')).toEqual([]);
  });

  it('stops waiting at the deadline while an attempt is stuck, and leaves nothing behind', async () => {
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hold: Middleware = {
      name: 'stuck',
      phase: 'transport',
      async handle(_ctx, next) {
        await stuck;
        return next();
      },
    };
    const data = createDataLayer({ client: createTestClient(), middlewares: [timeBudget({ writeMS: 50 }), hold] });
    const write = data.forTenant('acme').users.create({ external_id: 'late', profile: { display_name: 'Late' } });
    await expect(write).rejects.toMatchObject({ code: 'E_TIMEOUT', outcome: undefined });
    release();
  });

  it('sets no deadline without the layer, and validates its options', async () => {
    const client = createTestClient();
    const { budgets, recorder } = recording(client);
    const data = createDataLayer({ client, middlewares: [recorder] });
    await data.forTenant('acme').users.count();
    expect(budgets.every((budget) => budget.left === undefined)).toBe(true);
    expect(() => timeBudget({ readMS: 0 })).toThrow(ConfigError);
    expect(() => timeBudget({ readMS: 1.5 })).toThrow(ConfigError);
    expect(() => timeBudget({ bogus: 1 } as never)).toThrow(ConfigError);
  });
});

describe('streaming', () => {
  it('iterates every document once, a page of batchSize per command, while writes go on', async () => {
    const client = createTestClient();
    const pages: number[] = [];
    const data = createDataLayer({
      client,
      middlewares: [
        {
          name: 'count-pages',
          phase: 'transport',
          handle: (ctx, next) => {
            if (ctx.operation === 'groups.findMany') pages.push(pages.length);
            return next();
          },
        },
      ],
    });
    const acme = data.forTenant('acme');
    const owner = new ObjectId();
    await acme.groups.createMany(Array.from({ length: 250 }, (_, index) => ({ name: `g${index}`, owner_id: owner, member_ids: [] })));
    const seen: string[] = [];
    const writes: Promise<unknown>[] = [];
    for await (const group of acme.groups.stream({}, { batchSize: 100 })) {
      seen.push(String(group._id));
      // New documents sort before the stream's position (newest first): never seen, never duplicated.
      if (seen.length % 50 === 0) writes.push(acme.groups.create({ name: 'late', owner_id: owner, member_ids: [] }));
    }
    await Promise.all(writes);
    expect(seen.length).toBe(250);
    expect(new Set(seen).size).toBe(250);
    expect(pages.length).toBe(3);
    await expect(acme.groups.stream({}, { batchSize: 0 }).next()).rejects.toBeInstanceOf(ValidationError);
    await expect(acme.groups.stream({ $where: 'x' } as never).next()).rejects.toBeInstanceOf(ValidationError);
  });

  it('streams any paginated list method with streamPages', async () => {
    const data = createDataLayer({ client: createTestClient() });
    const acme = data.forTenant('acme');
    const sender = new ObjectId();
    const { conversation } = await acme.conversations.createDirect([sender, new ObjectId()]);
    await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        acme.messages.create({
          conversation_id: conversation._id,
          sender_id: sender,
          content: { type: 'text', encrypted_data: `m${index}` },
        }),
      ),
    );
    const ids: string[] = [];
    for await (const message of streamPages((page) => acme.messages.findByConversation(conversation._id, page), { batchSize: 7 }))
      ids.push(String(message._id));
    expect(ids.length).toBe(30);
    expect(new Set(ids).size).toBe(30);
  });
});

describe('connection options', () => {
  const valid = { uri: 'mongodb://db.example:27017', database: 'caas' };

  it('passes localThresholdMS, loadBalanced and read preference tags with max staleness to the driver', () => {
    const resolved = resolveDataClientConfig({
      ...valid,
      localThresholdMS: 30,
      loadBalanced: true,
      readPreference: { mode: 'nearest', tags: [{ region: 'eu-west-1' }, {}], maxStalenessSeconds: 120 },
    });
    expect(resolved.driverOptions).toMatchObject({
      localThresholdMS: 30,
      loadBalanced: true,
      readPreference: 'nearest',
      readPreferenceTags: [{ region: 'eu-west-1' }, {}],
      maxStalenessSeconds: 120,
    });
  });

  it('refuses invalid values with ConfigError naming the field', () => {
    expect(() => resolveDataClientConfig({ ...valid, localThresholdMS: -1 })).toThrow(/localThresholdMS/);
    expect(() => resolveDataClientConfig({ ...valid, loadBalanced: 'yes' })).toThrow(ConfigError);
    expect(() => resolveDataClientConfig({ ...valid, loadBalanced: true, directConnection: true })).toThrow(/loadBalanced/);
    expect(() => resolveDataClientConfig({ ...valid, readPreference: { mode: 'nearest', maxStalenessSeconds: 10 } })).toThrow(
      /maxStalenessSeconds/,
    );
  });
});
