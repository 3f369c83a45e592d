/**
 * Regressions of the tenancy bypass classes an adversarial review found, each attacked through the
 * public API with tenancy on and the auditor enforcing.
 */
import {
  CursorError,
  createDataLayer,
  type Document,
  IsolationAuditError,
  messagesDefinition,
  NotFoundError,
  Repository,
  TenancyViolationError,
  TenantContextError,
  TenantMismatchError,
  ValidationError,
} from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { createSearch } from '@caas-db/search';
import { createTestClient } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTenancy, type IsolationViolation } from '../src/index.js';

class Pipelines extends Repository<typeof messagesDefinition.schema> {
  run(pipeline: Document[]): Promise<Document[]> {
    return this.collection.aggregate('run', pipeline);
  }
}

const client = createTestClient();
const tenancy = createTenancy({ requireActiveTenant: false });
const search = createSearch();
const data = createDataLayer({ client, plugins: [tenancy, search] });
const violations: IsolationViolation[] = [];

beforeAll(async () => {
  await data.syncIndexes();
  tenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
  for (const tenant of ['a', 'b']) {
    const repositories = data.forTenant(tenant);
    for (let index = 0; index < 3; index += 1)
      await repositories.users.create({ external_id: `${tenant}-${index}`, profile: { display_name: `User ${tenant}${index}` } });
  }
});

describe('cursors are bound to the tenant', () => {
  it('refuses a page cursor issued to another tenant', async () => {
    const page = await data.forTenant('a').users.findMany({}, { limit: 1 });
    expect(page.nextCursor).not.toBeNull();
    await expect(data.forTenant('b').users.findMany({}, { limit: 1, cursor: page.nextCursor })).rejects.toBeInstanceOf(CursorError);
    const viaAmbient = tenancy.runWithTenant('b', () => data.users.findMany({}, { limit: 1, cursor: page.nextCursor }));
    await expect(viaAmbient).rejects.toBeInstanceOf(CursorError);
  });
});

describe('admin-style reads go through the scoper', () => {
  it('scopes explain to the bound tenant, refuses another tenant’s filter, and fails closed unbound', async () => {
    await expect(data.forTenant('a').users.explain({ tenant_id: 'b' } as never)).rejects.toBeInstanceOf(TenantMismatchError);
    await expect(data.users.explain({ external_id: 'a-0' })).rejects.toBeInstanceOf(TenantContextError);
  });

  it('refuses $indexStats (indexUsage) in tenant scope and allows it unbound', async () => {
    await expect(data.forTenant('a').users.indexUsage()).rejects.toBeInstanceOf(TenancyViolationError);
    expect((await data.users.indexUsage()).length).toBeGreaterThan(0);
  });
});

describe('pipeline scoping holes', () => {
  const runner = () => data.repository(messagesDefinition, Pipelines, 'a');

  it('refuses server-side JavaScript hidden in $lookup.let and in $facet', async () => {
    const javascript = { $function: { body: 'function () { return 1 }', args: [], lang: 'js' } };
    await expect(runner().run([{ $lookup: { from: 'users', let: { x: javascript }, pipeline: [], as: 'u' } }])).rejects.toBeInstanceOf(
      TenancyViolationError,
    );
    await expect(runner().run([{ $facet: { f: [{ $addFields: { y: javascript } }] } }])).rejects.toBeInstanceOf(TenancyViolationError);
  });

  it('walks objects of any prototype and refuses what it cannot walk', async () => {
    const bare = Object.assign(Object.create(null) as Document, { $where: 'true' });
    await expect(data.forTenant('a').users.findOne(bare as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(runner().run([{ $match: bare }])).rejects.toBeInstanceOf(TenancyViolationError);
    class Sneaky {
      toBSON() {
        return {};
      }
    }
    await expect(runner().run([{ $match: new Sneaky() as never }])).rejects.toBeInstanceOf(TenancyViolationError);
    await expect(runner().run([{ $match: { status: () => 'sent' } }])).rejects.toBeInstanceOf(TenancyViolationError);
    const ownToBSON = { status: 'sent', toBSON: () => ({}) };
    await expect(runner().run([{ $match: ownToBSON }])).rejects.toBeInstanceOf(TenancyViolationError);
  });
});

describe('tenant identifiers that are not valid strings', () => {
  const odd: unknown[] = [{ $ne: null }, { $gt: '' }, ['a'], 1, null, true, '', 'A', 'a'.repeat(65), '$a', 'a.b'];

  it.each(odd.map((value) => [JSON.stringify(value), value]))('refuses %s at every entry that takes a tenant', async (_, value) => {
    expect(() => data.forTenant(value as string)).toThrow(ValidationError);
    expect(() => data.repository(messagesDefinition, Pipelines, value as string)).toThrow(ValidationError);
    expect(() => search.forTenant(value as string)).toThrow(ValidationError);
    expect(() => tenancy.runWithTenant(value as string, () => 1)).toThrow(ValidationError);
  });
});

describe('platform repositories on a tenant-bound view', () => {
  it('offers only the tenant’s own records, and the types show it', async () => {
    const a = data.forTenant('a');
    for (const platform of ['clients', 'applications', 'apiKeys', 'auditLogs', 'billing']) expect(platform in a).toBe(false);
    // @ts-expect-error platform administration is not on a tenant-bound view
    expect(a.clients).toBeUndefined();
    await data.clients.create({ tenant_id: 'a', name: 'A', region: 'eu-west-1' });
    await data.clients.create({ tenant_id: 'b', name: 'B', region: 'eu-west-1' });
    expect((await a.account.client())?.tenant_id).toBe('a');
    const { key: bKey, secret: bSecret } = await data.forTenant('b').account.apiKeys.issue({ name: 'b key', scopes: ['messages:read'] });
    const { key: aKey } = await a.account.apiKeys.issue({ name: 'a key', scopes: ['messages:read'] });
    expect(aKey.tenant_id).toBe('a');
    expect((await a.account.apiKeys.list()).items.map((key) => key.tenant_id)).toEqual(['a']);
    await expect(a.account.apiKeys.revoke(bKey._id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await data.apiKeys.verify(bSecret)).valid).toBe(true);
    expect(await a.account.apiKeys.revoke(aKey._id)).toBe(true);
    await data
      .forTenant('b')
      .account.auditLogs.append({ actor: { type: 'system', id: 'job' }, action: 'x.y', target: { collection: 'users' }, at: new Date() });
    expect((await a.account.auditLogs.list()).items).toEqual([]);
    const issue = { name: 'sneaky', scopes: ['messages:read'], tenant_id: 'b' };
    const sneaky = await a.account.apiKeys.issue(issue as never).catch((error: unknown) => error);
    if (!(sneaky instanceof Error)) expect((sneaky as { key: { tenant_id: string } }).key.tenant_id).toBe('a');
  });
});

describe('upsert in tenant scope', () => {
  it('creates and then updates through Repository.upsert', async () => {
    const users = data.forTenant('a').users;
    const first = await users.upsert({ external_id: 'upserted' }, { external_id: 'upserted', profile: { display_name: 'One' } });
    const second = await users.upsert({ external_id: 'upserted' }, { external_id: 'upserted', profile: { display_name: 'Two' } });
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.document.tenant_id).toBe('a');
    expect(await data.forTenant('b').users.findByExternalId('upserted')).toBeNull();
    await expect(
      users.upsert({ external_id: 'x' }, { external_id: 'x', tenant_id: 'b', profile: { display_name: 'X' } } as never),
    ).rejects.toBeInstanceOf(TenantMismatchError);
  });
});

describe('settings values', () => {
  it('refuses a __proto__ key anywhere in a value, like every other reserved key', async () => {
    const value = JSON.parse('{"theme": {"__proto__": {"polluted": true}}}') as unknown;
    await expect(data.forTenant('a').settings.set('ui', value)).rejects.toBeInstanceOf(ValidationError);
    expect(await data.forTenant('a').settings.get()).toEqual({});
  });
});

describe('auditor blind spots (raw driver, reported)', () => {
  const reported = async (send: () => Promise<unknown>) => {
    const before = violations.length;
    await send().catch(() => undefined);
    return violations.slice(before);
  };

  it('reports joins into tenant collections from a platform collection and from a database-level aggregate', async () => {
    const db = unsafeDatabase(client);
    const join = await reported(() =>
      db
        .collection('clients')
        .aggregate([{ $lookup: { from: 'users', pipeline: [], as: 'u' } }])
        .toArray(),
    );
    expect(join.length).toBeGreaterThan(0);
    const union = await reported(() =>
      db
        .collection('clients')
        .aggregate([{ $unionWith: { coll: 'users' } }])
        .toArray(),
    );
    expect(union.length).toBeGreaterThan(0);
    const documents = await reported(() =>
      db.aggregate([{ $documents: [{ x: 1 }] }, { $lookup: { from: 'users', pipeline: [], as: 'u' } }]).toArray(),
    );
    expect(documents.length).toBeGreaterThan(0);
  });

  it('reports updates whose filter names one tenant but whose update writes another', async () => {
    const users = unsafeDatabase(client).collection('users');
    const moved = await reported(() => users.updateOne({ tenant_id: 'a', external_id: 'nobody' }, { $set: { tenant_id: 'b' } }));
    expect(moved.length).toBeGreaterThan(0);
    const upserted = await reported(() =>
      users.updateOne({ tenant_id: 'a', external_id: 'nobody' }, { $setOnInsert: { tenant_id: 'b' } }, { upsert: true }),
    );
    expect(upserted.length).toBeGreaterThan(0);
    await users.deleteMany({ tenant_id: 'b', external_id: 'nobody' });
  });

  it('knows the tenant-owned collections of a repository before its first command', async () => {
    data.repository({ ...messagesDefinition, collection: 'side_notes' }, Pipelines);
    const raw = await reported(() => unsafeDatabase(client).collection('side_notes').find({}).toArray());
    expect(raw.map((violation) => violation.collection)).toContain('side_notes');
  });

  it('fails a data-layer operation whose wire command names two tenants', async () => {
    const sneaky = createDataLayer({
      client,
      plugins: [createTenancy({ requireActiveTenant: false })],
      middlewares: [
        {
          name: 'move',
          phase: 'transport',
          handle: (ctx, next) => {
            if (ctx.command.kind === 'findOneAndUpdate') ctx.command = { ...ctx.command, update: { $set: { tenant_id: 'b' } } };
            return next();
          },
        },
      ],
    });
    const user = await sneaky.forTenant('a').users.findByExternalId('a-0');
    await expect(sneaky.forTenant('a').users.update(user?._id as never, { profile: { display_name: 'moved?' } })).rejects.toBeInstanceOf(
      IsolationAuditError,
    );
  });
});
