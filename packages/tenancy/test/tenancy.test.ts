import { createDataLayer, type DataLayer, ObjectId, TenantContextError, TenantMismatchError } from '@caas-db/core';
import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
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
  client.driver.on('commandStarted', listener);
  try {
    await action().catch(() => undefined);
  } finally {
    client.driver.off('commandStarted', listener);
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

describe('isolation auditor', () => {
  it('catches a deliberately unscoped raw driver command and refuses it in enforce mode', async () => {
    const violations: IsolationViolation[] = [];
    const stop = tenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    const raw = client.driver.db(testDatabaseName()).collection('users');
    await expect(raw.find({ external_id: 'ambient' }).toArray()).rejects.toBeInstanceOf(IsolationAuditError);
    await expect(raw.deleteMany({})).rejects.toBeInstanceOf(IsolationAuditError);
    await expect(
      raw.aggregate([{ $match: { tenant_id: 'acme' } }, { $lookup: { from: 'messages', pipeline: [], as: 'm' } }]).toArray(),
    ).rejects.toBeInstanceOf(IsolationAuditError);
    expect(await raw.countDocuments({ tenant_id: 'acme' })).toBeGreaterThan(0);
    stop?.();
    expect(violations.map((violation) => violation.commandName)).toEqual(['find', 'delete', 'aggregate']);
    expect(violations[2]?.problems).toEqual(['pipeline.1.$lookup.pipeline has no tenant_id equality']);
    expect(await runWithTenant('acme', () => data.users.count())).toBeGreaterThan(0);
  });

  it('reports without refusing in warn mode', async () => {
    const warnClient = createTestClient();
    const warnTenancy = createTenancy({ audit: 'warn', requireActiveTenant: false });
    createDataLayer({ client: warnClient, plugins: [warnTenancy] });
    const violations: IsolationViolation[] = [];
    warnTenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
    await warnClient.driver.db(testDatabaseName()).collection('messages').find({}).toArray();
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ commandName: 'find', collection: 'messages', mode: 'warn' });
  });
});

describe('shard targeting', () => {
  it('refuses inserts that lack a field of a declared shard key, and accepts the ones the repositories send', async () => {
    const shardClient = createTestClient();
    const sharded = createTenancy({ requireActiveTenant: false, shardKeys: { messages: ['tenant_id', 'conversation_id', '_id'] } });
    const layer = createDataLayer({ client: shardClient, plugins: [sharded] });
    const message = await layer
      .forTenant('acme')
      .messages.create({ conversation_id: new ObjectId(), sender_id: new ObjectId(), content: { type: 'text', encrypted_data: 'eA' } });
    expect(message.tenant_id).toBe('acme');
    const raw = shardClient.driver.db(testDatabaseName()).collection('messages');
    await expect(raw.insertOne({ tenant_id: 'acme', sender_id: new ObjectId() })).rejects.toMatchObject({
      code: 'E_ISOLATION_AUDIT',
      problems: ['documents.0 lacks shard key field conversation_id'],
    });
    expect(() => createTenancy({ shardKeys: { messages: ['conversation_id'] } })).toThrow(/start with tenant_id/);
  });
});

describe('TenancyViolationError', () => {
  it('has a stable code and the path of the problem', () => {
    const error = new TenancyViolationError('pipeline.0.$out', '$out is refused');
    expect(error).toMatchObject({ code: 'E_TENANCY_VIOLATION', path: 'pipeline.0.$out' });
  });
});
