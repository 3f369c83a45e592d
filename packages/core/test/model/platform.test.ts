import { createTestDataLayer, refusalCheck } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DuplicateKeyError, NotFoundError, ObjectId, ValidationError } from '../../src/index.js';
import { unsafeDatabase } from '../../src/unsafe.js';

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
    // The stored document as it is in the database, not as the repository returns it.
    const raw = await unsafeDatabase(data.client).collection('api_keys').findOne({ _id: key._id });
    expect(raw).not.toBeNull();
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

describe('billing plan changes within a month', () => {
  const at = (iso: string) => new Date(iso);
  const planRecords = (tenant: string) => data.billing.count({ tenant_id: tenant, kind: 'plan' });
  // Listed here rather than imported, to keep this block's edits away from the file's import lines.
  const plans = ['free', 'starter', 'pro', 'enterprise'] as const;

  it('records two and three changes in one month and answers the plan in effect between them', async () => {
    await data.billing.setPlan('hooli', 'free', at('2026-03-01T00:00:00Z'));
    await data.billing.setPlan('hooli', 'starter', at('2026-03-10T12:00:00Z'));
    expect(await planRecords('hooli')).toBe(2);
    expect(await data.billing.currentPlan('hooli', at('2026-02-28T23:59:59.999Z'))).toBeNull();
    expect(await data.billing.currentPlan('hooli', at('2026-03-05T00:00:00Z'))).toBe('free');
    expect(await data.billing.currentPlan('hooli', at('2026-03-10T11:59:59.999Z'))).toBe('free');
    expect(await data.billing.currentPlan('hooli', at('2026-03-10T12:00:00Z'))).toBe('starter');

    const third = await data.billing.setPlan('hooli', 'enterprise', at('2026-03-20T00:00:00Z'));
    expect(third).toMatchObject({ tenant_id: 'hooli', kind: 'plan', period: '2026-03', plan: 'enterprise' });
    expect(await planRecords('hooli')).toBe(3);
    expect(await data.billing.currentPlan('hooli', at('2026-03-15T00:00:00Z'))).toBe('starter');
    expect(await data.billing.currentPlan('hooli', at('2026-03-25T00:00:00Z'))).toBe('enterprise');
    expect(await data.billing.currentPlan('hooli', at('2026-04-01T00:00:00Z'))).toBe('enterprise');

    // A change recorded late (backdated) still takes its place in the history.
    await data.billing.setPlan('hooli', 'pro', at('2026-03-15T00:00:00Z'));
    expect(await planRecords('hooli')).toBe(4);
    expect(await data.billing.currentPlan('hooli', at('2026-03-14T00:00:00Z'))).toBe('starter');
    expect(await data.billing.currentPlan('hooli', at('2026-03-16T00:00:00Z'))).toBe('pro');
    expect(await data.billing.currentPlan('hooli', at('2026-03-21T00:00:00Z'))).toBe('enterprise');
  });

  it('keeps one change per instant: setting a plan again at the same effective time replaces it', async () => {
    const when = at('2026-05-07T09:00:00Z');
    await data.billing.setPlan('pied-piper', 'starter', when);
    const again = await data.billing.setPlan('pied-piper', 'pro', when);
    expect(again).toMatchObject({ plan: 'pro', effective_from: when });
    expect(await planRecords('pied-piper')).toBe(1);
    expect(await data.billing.currentPlan('pied-piper', when)).toBe('pro');
  });

  it('records concurrent changes without a duplicate key error', async () => {
    const instants = Array.from({ length: 12 }, (_, index) => new Date(Date.UTC(2026, 6, 1 + index, 8)));
    const planAt = (index: number) => plans[index % plans.length] as (typeof plans)[number];
    await Promise.all(instants.map((when, index) => data.billing.setPlan('endframe', planAt(index), when)));
    expect(await planRecords('endframe')).toBe(instants.length);
    for (const [index, when] of instants.entries()) {
      expect(await data.billing.currentPlan('endframe', new Date(when.getTime() + 1000))).toBe(planAt(index));
    }

    // Racing calls for the same instant (a retried request, two operators) leave one change.
    const when = at('2026-08-03T10:00:00Z');
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, index) => data.billing.setPlan('raviga', planAt(index), when)));
    expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
    expect(await planRecords('raviga')).toBe(1);
    expect(plans).toContain(await data.billing.currentPlan('raviga', when));
  });
});
