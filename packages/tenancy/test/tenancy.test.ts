import {
  type CollectionCommand,
  createDataLayer,
  type DataLayer,
  type Document,
  type Middleware,
  ObjectId,
  TenantContextError,
  TenantMismatchError,
} from '@caas-db/core';
import { unsafeDatabase, unsafeDriver } from '@caas-db/core/unsafe';
import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createTenancy,
  IsolationAuditError,
  type IsolationViolation,
  runWithTenant,
  type Tenancy,
  TenancyViolationError,
  TenantNotFoundError,
  TenantSuspendedError,
} from '../src/index.js';

const client = createTestClient();
const tenancy: Tenancy = createTenancy({ directory: { ttlMS: 60_000 } });
const data: DataLayer = createDataLayer({ client, plugins: [tenancy] });

/** Counts the commands the driver sends while `action` runs. */
async function commandsSentDuring(action: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const listener = (event: { commandName: string }) => sent.push(event.commandName);
  unsafeDriver(client).on('commandStarted', listener);
  try {
    await action().catch(() => undefined);
  } finally {
    unsafeDriver(client).off('commandStarted', listener);
  }
  return sent;
}

beforeAll(async () => {
  await data.syncIndexes();
  await data.clients.create({ tenant_id: 'acme', name: 'Acme', region: 'eu-west-1' });
  await data.clients.create({ tenant_id: 'globex', name: 'Globex', region: 'us-east-1' });
  await data.clients.create({ tenant_id: 'frozen', name: 'Frozen', region: 'eu-west-1', status: 'suspended', suspension_reason: 'unpaid' });
});

describe('tenant context, fail-closed', () => {
  it('refuses a tenant-owned collection with no tenant bound, sending nothing', async () => {
    const sent = await commandsSentDuring(() => data.users.count());
    expect(sent).toEqual([]);
    await expect(data.users.count()).rejects.toBeInstanceOf(TenantContextError);
    await expect(
      data.messages.create({ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: { type: 'text', encrypted_data: 'eA' } }),
    ).rejects.toBeInstanceOf(TenantContextError);
  });

  it('scopes to the ambient tenant of runWithTenant, across awaits', async () => {
    const user = await runWithTenant('acme', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return data.users.create({ external_id: 'ambient', profile: { display_name: 'A' } });
    });
    expect(user.tenant_id).toBe('acme');
    expect(await runWithTenant('acme', () => data.users.findByExternalId('ambient'))).not.toBeNull();
    expect(await runWithTenant('globex', () => data.users.findByExternalId('ambient'))).toBeNull();
    expect(() => runWithTenant('Not Valid', () => 1)).toThrow(/tenant/);
  });

  it('keeps platform collections reachable without a tenant', async () => {
    expect(await data.clients.findByTenantId('acme')).toMatchObject({ status: 'active' });
  });

  it('refuses unknown and suspended tenants, and caches the lookup', async () => {
    await expect(data.forTenant('nobody').users.count()).rejects.toBeInstanceOf(TenantNotFoundError);
    await expect(data.forTenant('frozen').users.count()).rejects.toBeInstanceOf(TenantSuspendedError);
    const sent = await commandsSentDuring(async () => {
      await Promise.all(Array.from({ length: 20 }, () => data.forTenant('acme').users.count()));
    });
    expect(sent.filter((name) => name === 'find')).toHaveLength(0);
    expect(sent.filter((name) => name === 'aggregate')).toHaveLength(20);
  });

  it('sees a suspension once the cached status is forgotten', async () => {
    await data.clients.create({ tenant_id: 'soon-frozen', name: 'S', region: 'eu-west-1' });
    await data.forTenant('soon-frozen').users.count();
    await data.clients.suspend('soon-frozen', 'terms violation');
    tenancy.directory.forget('soon-frozen');
    await expect(data.forTenant('soon-frozen').users.count()).rejects.toThrow(/suspended: terms violation/);
  });
});

describe('scoping at the choke point', () => {
  it('refuses updates of tenant_id, $out and server-side JavaScript before sending', async () => {
    const acme = data.forTenant('acme');
    const user = await acme.users.create({ external_id: 'scoped', profile: { display_name: 'S' } });
    const cases: Array<() => Promise<unknown>> = [
      () => acme.users.updateWith(user._id, { $set: { tenant_id: 'globex' } }),
      () => acme.messages.findMany({ $where: 'true' } as never),
    ];
    for (const attempt of cases) {
      const sent = await commandsSentDuring(attempt);
      expect(sent.filter((name) => name !== 'find' || true)).not.toContain('update');
      await expect(attempt()).rejects.toMatchObject({ code: expect.stringMatching(/^E_(VALIDATION|TENANCY_VIOLATION|TENANT_MISMATCH)$/) });
    }
    await expect(acme.users.create({ tenant_id: 'globex', external_id: 'x', profile: { display_name: 'X' } })).rejects.toBeInstanceOf(
      TenantMismatchError,
    );
  });
});

/** A `transport` layer that strips the tenant predicate from the filter the scoper added: a scoper bug, simulated. */
const unscope: Middleware = {
  name: 'unscope',
  phase: 'transport',
  handle: async (ctx, next) => {
    if ('filter' in ctx.command && ctx.command.filter) {
      const { tenant_id: _dropped, ...filter } = ctx.command.filter;
      ctx.command = { ...ctx.command, filter } as CollectionCommand;
    }
    return next();
  },
};

describe('isolation auditor', () => {
  it('reports a deliberately unscoped raw driver command in enforce mode, without blocking it', async () => {
    const violations: IsolationViolation[] = [];
    const stop = tenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    const checkedBefore = tenancy.auditor?.checked ?? 0;
    const raw = unsafeDatabase(client).collection('users');
    // The raw driver passes no layer: the commands run, unscoped, and are only reported.
    expect((await raw.find({ external_id: 'ambient' }).toArray()).map((user) => user.tenant_id)).toEqual(['acme']);
    expect((await raw.deleteMany({ external_id: 'nobody-has-this-id' })).deletedCount).toBe(0);
    const joined = await raw
      .aggregate([{ $match: { tenant_id: 'acme' } }, { $lookup: { from: 'messages', pipeline: [], as: 'm' } }])
      .toArray();
    expect(joined.length).toBeGreaterThan(0);
    expect(await raw.countDocuments({ tenant_id: 'acme' })).toBeGreaterThan(0);
    stop?.();
    expect(violations.map((violation) => violation.commandName)).toEqual(['find', 'delete', 'aggregate']);
    expect(violations.every((violation) => violation.mode === 'enforce' && violation.collection === 'users')).toBe(true);
    expect(violations[0]?.problems).toEqual(['filter has no tenant_id equality']);
    expect(violations[1]?.problems).toEqual(['deletes.0.q has no tenant_id equality']);
    expect(violations[2]?.problems).toEqual(['pipeline.1.$lookup.pipeline has no tenant_id equality']);
    expect(tenancy.auditor?.checked).toBe(checkedBefore + 4);
    // The unsafe commands left nothing pending: the next operations of the data layer succeed.
    expect(await runWithTenant('acme', () => data.users.count())).toBeGreaterThan(0);
    expect(await data.forTenant('acme').users.findByExternalId('ambient')).not.toBeNull();
  });

  it('fails a data-layer operation whose wire command is unscoped with IsolationAuditError in enforce mode', async () => {
    const enforcing = createTenancy({ requireActiveTenant: false });
    const layer = createDataLayer({ client: createTestClient(), plugins: [enforcing], middlewares: [unscope] });
    const violations: IsolationViolation[] = [];
    enforcing.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    const acme = layer.forTenant('acme');
    // An insert has no filter to strip: it is sent scoped and succeeds.
    const user = await acme.users.create({ external_id: 'audited', profile: { display_name: 'A' } });
    expect(violations).toEqual([]);
    const error = await acme.users.findByExternalId('audited').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(IsolationAuditError);
    expect(error).toMatchObject({ code: 'E_ISOLATION_AUDIT', problems: ['filter has no tenant_id equality'] });
    expect(violations).toMatchObject([
      { commandName: 'find', collection: 'users', mode: 'enforce', problems: ['filter has no tenant_id equality'] },
    ]);
    await expect(acme.users.delete(user._id)).rejects.toBeInstanceOf(IsolationAuditError);
    expect(violations.map((violation) => violation.commandName)).toEqual([
      'find',
      expect.stringMatching(/^(update|delete|findAndModify)$/),
    ]);
    // Only the operation whose command was unscoped fails: the violation is not left pending for the next one.
    await expect(acme.users.create({ external_id: 'audited-2', profile: { display_name: 'B' } })).resolves.toMatchObject({
      tenant_id: 'acme',
    });
  });

  it('reports without refusing in warn mode', async () => {
    const warnClient = createTestClient();
    const warnTenancy = createTenancy({ audit: 'warn', requireActiveTenant: false });
    const warnLayer = createDataLayer({ client: warnClient, plugins: [warnTenancy], middlewares: [unscope] });
    const violations: IsolationViolation[] = [];
    warnTenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    await unsafeDatabase(warnClient).collection('messages').find({}).toArray();
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ commandName: 'find', collection: 'messages', mode: 'warn' });
    // A data-layer operation with an unscoped wire command is reported too, and still returns its result.
    await warnLayer.forTenant('acme').users.create({ external_id: 'warned', profile: { display_name: 'W' } });
    expect(await warnLayer.forTenant('acme').users.findByExternalId('warned')).toMatchObject({ tenant_id: 'acme' });
    expect(violations).toHaveLength(2);
    expect(violations[1]).toMatchObject({ commandName: 'find', collection: 'users', mode: 'warn' });
  });
});

describe('shard targeting', () => {
  it('reports raw inserts that lack a field of a declared shard key, fails data-layer ones, and accepts the ones the repositories send', async () => {
    const shardClient = createTestClient();
    const sharded = createTenancy({ requireActiveTenant: false, shardKeys: { messages: ['tenant_id', 'conversation_id', '_id'] } });
    /** A `transport` layer that drops the conversation from inserted messages once switched on: a repository bug, simulated. */
    let dropConversation = false;
    const withoutConversation = ({ conversation_id: _dropped, ...document }: Document) => document;
    const dropping: Middleware = {
      name: 'drop-conversation',
      phase: 'transport',
      handle: async (ctx, next) => {
        if (dropConversation && ctx.command.kind === 'insertOne')
          ctx.command = { ...ctx.command, document: withoutConversation(ctx.command.document) };
        if (dropConversation && ctx.command.kind === 'insertMany')
          ctx.command = { ...ctx.command, documents: ctx.command.documents.map(withoutConversation) };
        return next();
      },
    };
    // The messages reference conversations the test does not create: the reference check is off.
    const layer = createDataLayer({ client: shardClient, integrity: { messages: false }, plugins: [sharded], middlewares: [dropping] });
    const violations: IsolationViolation[] = [];
    sharded.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    const message = await layer
      .forTenant('acme')
      .messages.create({ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: { type: 'text', encrypted_data: 'eA' } });
    expect(message.tenant_id).toBe('acme');
    expect(violations).toEqual([]);
    const raw = unsafeDatabase(shardClient).collection('messages');
    const inserted = await raw.insertOne({ tenant_id: 'acme', sender_id: new ObjectId() });
    expect(await raw.countDocuments({ tenant_id: 'acme', _id: inserted.insertedId })).toBe(1);
    expect(violations).toMatchObject([
      { commandName: 'insert', collection: 'messages', mode: 'enforce', problems: ['documents.0 lacks shard key field conversation_id'] },
    ]);
    dropConversation = true;
    await expect(
      layer
        .forTenant('acme')
        .messages.create({ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: { type: 'text', encrypted_data: 'eA' } }),
    ).rejects.toMatchObject({ code: 'E_ISOLATION_AUDIT', problems: ['documents.0 lacks shard key field conversation_id'] });
    expect(violations).toHaveLength(2);
    expect(() => createTenancy({ shardKeys: { messages: ['conversation_id'] } })).toThrow(/start with tenant_id/);
  });
});

describe('TenancyViolationError', () => {
  it('has a stable code and the path of the problem', () => {
    const error = new TenancyViolationError('pipeline.0.$out', '$out is refused');
    expect(error).toMatchObject({ code: 'E_TENANCY_VIOLATION', path: 'pipeline.0.$out' });
  });
});
