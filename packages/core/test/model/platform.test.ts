import { createTestDataLayer, refusalCheck } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DuplicateKeyError, NotFoundError, ObjectId, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();

const expectNoWrites = refusalCheck(data.client, ValidationError);

describe('clients', () => {
  it('registers tenants, suspends, reactivates and changes plans', async () => {
    const client = await data.clients.create({ tenant_id: 'initech', name: 'Initech', region: 'eu-west-1' });
    expect(client).toMatchObject({ status: 'active', plan: 'free', version: 1 });
    await expect(data.clients.create({ tenant_id: 'initech', name: 'Again', region: 'eu-west-1' })).rejects.toBeInstanceOf(
      DuplicateKeyError,
    );
    expect(await data.clients.suspend('initech', 'unpaid invoices')).toMatchObject({
      status: 'suspended',
      suspension_reason: 'unpaid invoices',
    });
    expect((await data.clients.listByStatus('suspended')).items.map((item) => item.tenant_id)).toContain('initech');
    const active = await data.clients.activate('initech');
    expect(active.status).toBe('active');
    expect(active.suspension_reason).toBeUndefined();
    expect((await data.clients.changePlan('initech', 'pro')).plan).toBe('pro');
    expect(await data.clients.findByTenantId('initech')).toMatchObject({ plan: 'pro', version: 4 });
    await expect(data.clients.suspend('nobody', 'x')).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each([
    ['an invalid tenant id', { tenant_id: 'Bad Tenant', name: 'x', region: 'eu-west-1' }],
    ['an invalid region', { tenant_id: 'okay', name: 'x', region: 'mars' }],
    ['an unknown plan', { tenant_id: 'okay', name: 'x', region: 'eu-west-1', plan: 'platinum' }],
    ['an invalid email', { tenant_id: 'okay', name: 'x', region: 'eu-west-1', contact_email: 'not-an-email' }],
  ])('refuses %s without writing', async (_, input) => {
    await expectNoWrites(() => data.clients.create(input as never));
  });

  it('refuses an invalid plan or reason without writing', async () => {
    await data.clients.create({ tenant_id: 'umbrella', name: 'Umbrella', region: 'us-east-1' });
    await expectNoWrites(() => data.clients.changePlan('umbrella', 'gold' as never));
    await expectNoWrites(() => data.clients.suspend('umbrella', ''));
  });
});

describe('applications', () => {
  it('lists a client’s applications and validates origins', async () => {
    await data.applications.create({ tenant_id: 'initech', name: 'Web', platform: 'web', allowed_origins: ['https://app.initech.test'] });
    await data.applications.create({ tenant_id: 'initech', name: 'iOS', platform: 'ios' });
    expect((await data.applications.listForTenant('initech')).items.map((app) => app.name)).toEqual(['iOS', 'Web']);
    await expectNoWrites(() =>
      data.applications.create({ tenant_id: 'initech', name: 'Bad', platform: 'web', allowed_origins: ['ftp://x'] }),
    );
    await expectNoWrites(() => data.applications.create({ tenant_id: 'initech', name: 'Bad', platform: 'desktop' } as never));
  });
});

describe('api_keys', () => {
  it('issues a key once, stores only its hash, verifies, expires and revokes', async () => {
    const now = new Date('2026-11-26T12:00:00Z');
    const { key, secret } = await data.apiKeys.issue({
      tenant_id: 'initech',
      name: 'backend',
      scopes: ['messages:write'],
      expires_at: new Date(now.getTime() + 3_600_000),
    });
    expect(secret).toMatch(/^caas_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(secret.startsWith(`caas_${key.prefix}_`)).toBe(true);
    const raw = await data.client.execute({ name: 'raw', idempotent: true }, (db) => db.collection('api_keys').findOne({ _id: key._id }));
    // The secret part is base64url, which may itself contain '_': cut after the prefix, not on '_'.
    const secretPart = secret.slice(`caas_${key.prefix}_`.length);
    expect(secretPart).toHaveLength(43);
    expect(JSON.stringify(raw)).not.toContain(secretPart);
    expect(raw?.secret_hash).toMatch(/^[0-9a-f]{64}$/);

    const verified = await data.apiKeys.verify(secret, now);
    expect(verified.valid && verified.key._id.equals(key._id)).toBe(true);
    expect((await data.apiKeys.getById(key._id)).last_used_at).toEqual(now);
    expect(await data.apiKeys.verify(`${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`, now)).toEqual({
      valid: false,
      reason: 'unknown',
    });
    expect(await data.apiKeys.verify(`caas_zzzzzzzzzzzz_${'A'.repeat(43)}`, now)).toEqual({ valid: false, reason: 'unknown' });
    expect(await data.apiKeys.verify('Bearer nonsense', now)).toEqual({ valid: false, reason: 'malformed' });
    expect(await data.apiKeys.verify({ $ne: null }, now)).toEqual({ valid: false, reason: 'malformed' });
    expect(await data.apiKeys.verify(secret, new Date(now.getTime() + 7_200_000))).toEqual({ valid: false, reason: 'expired' });
    expect(await data.apiKeys.revoke(key._id)).toBe(true);
    expect(await data.apiKeys.revoke(key._id)).toBe(false);
    expect(await data.apiKeys.verify(secret, now)).toEqual({ valid: false, reason: 'revoked' });
    expect((await data.apiKeys.listForTenant('initech')).items).toHaveLength(1);
    await expect(data.apiKeys.revoke(new ObjectId())).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses invalid scopes without writing', async () => {
    await expectNoWrites(() => data.apiKeys.issue({ tenant_id: 'initech', name: 'x', scopes: [] }));
    await expectNoWrites(() => data.apiKeys.issue({ tenant_id: 'initech', name: 'x', scopes: ['ADMIN'] }));
  });
});

describe('billing', () => {
  it('counts usage per month and metric exactly under concurrent increments', async () => {
    const at = new Date('2026-11-15T00:00:00Z');
    await Promise.all(Array.from({ length: 25 }, () => data.billing.recordUsage('initech', 'messages', 4, at)));
    await data.billing.recordUsage('initech', 'storage_bytes', 1024, at);
    await data.billing.recordUsage('initech', 'messages', 1, new Date('2026-12-01T00:00:00Z'));
    expect(await data.billing.usageFor('initech', '2026-11')).toEqual({ messages: 100, storage_bytes: 1024 });
    expect(await data.billing.usageFor('initech', '2026-12')).toEqual({ messages: 1 });
    await expectNoWrites(() => data.billing.recordUsage('initech', 'messages', -1, at));
    await expectNoWrites(() => data.billing.recordUsage('initech', 'bitcoins' as never, 1, at));
    await expect(data.billing.usageFor('initech', '2026-13')).rejects.toBeInstanceOf(ValidationError);
  });

  it('keeps a plan history and answers the plan in effect', async () => {
    await data.billing.setPlan('initech', 'starter', new Date('2026-01-01T00:00:00Z'));
    await data.billing.setPlan('initech', 'enterprise', new Date('2026-06-01T00:00:00Z'));
    expect(await data.billing.currentPlan('initech', new Date('2026-03-01T00:00:00Z'))).toBe('starter');
    expect(await data.billing.currentPlan('initech', new Date('2026-07-01T00:00:00Z'))).toBe('enterprise');
    expect(await data.billing.currentPlan('nobody')).toBeNull();
  });
});

describe('audit_logs', () => {
  it('appends and lists, and offers no update or delete', async () => {
    const at = new Date('2026-11-26T09:00:00Z');
    const entry = await data.auditLogs.append({
      tenant_id: 'initech',
      actor: { type: 'operator', id: 'ops-1' },
      action: 'client.suspend',
      target: { collection: 'clients', id: 'initech' },
      ip: '10.0.0.1',
      at,
    });
    await data.auditLogs.appendMany([
      {
        tenant_id: 'initech',
        actor: { type: 'system', id: 'billing' },
        action: 'client.activate',
        target: { collection: 'clients', id: 'initech' },
        at: new Date(at.getTime() + 1000),
      },
    ]);
    expect((await data.auditLogs.listForTenant('initech')).items.map((item) => item.action)).toEqual(['client.activate', 'client.suspend']);
    expect((await data.auditLogs.listByAction('client.suspend')).items.map((item) => item._id)).toEqual([entry._id]);
    expect((await data.auditLogs.listForTarget('clients', 'initech')).items).toHaveLength(2);
    expect(await data.auditLogs.findById(entry._id)).toMatchObject({ action: 'client.suspend' });
    const surface = data.auditLogs as unknown as Record<string, unknown>;
    for (const method of ['update', 'updateWith', 'updateMany', 'delete', 'softDelete', 'bulkWrite', 'findOneAndUpdate', 'upsert'])
      expect(surface[method]).toBeUndefined();
    await expectNoWrites(() =>
      data.auditLogs.append({ actor: { type: 'user', id: 'u' }, action: 'Not An Action', target: { collection: 'x' }, at }),
    );
    await expectNoWrites(() =>
      data.auditLogs.append({ actor: { type: 'user', id: 'u' }, action: 'a.b', target: { collection: 'x' }, ip: '999.1.1.1', at }),
    );
  });
});
