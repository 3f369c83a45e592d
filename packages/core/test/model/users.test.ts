import { createTestDataLayer, refusalCheck } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { DuplicateKeyError, NotFoundError, ObjectId, TenantContextError, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');

const expectNoWrites = refusalCheck(data.client, ValidationError);

describe('users.create', () => {
  it('creates a user with profile defaults, unique per tenant and external id', async () => {
    const alice = await acme.users.create({ external_id: 'alice', profile: { display_name: 'Alice' } });
    expect(alice).toMatchObject({
      tenant_id: 'acme',
      profile: { status: 'offline' },
      settings: { notifications: true },
      relationships: [],
      version: 1,
    });
    await expect(acme.users.create({ external_id: 'alice', profile: { display_name: 'Alice 2' } })).rejects.toBeInstanceOf(
      DuplicateKeyError,
    );
    const otherAlice = await globex.users.create({ external_id: 'alice', profile: { display_name: 'Alice of Globex' } });
    expect(otherAlice.tenant_id).toBe('globex');
  });

  it.each([
    ['a missing display name', { external_id: 'u1', profile: {} }],
    ['an unknown status', { external_id: 'u2', profile: { display_name: 'U', status: 'sleeping' } }],
    ['a javascript: avatar', { external_id: 'u3', profile: { display_name: 'U', avatar_url: 'javascript:alert(1)' } }],
    ['a $-prefixed custom_data key', { external_id: 'u4', profile: { display_name: 'U', custom_data: { $ne: 1 } } }],
    ['an external id starting with $', { external_id: '$admin', profile: { display_name: 'U' } }],
    ['an oversized display name', { external_id: 'u5', profile: { display_name: 'x'.repeat(129) } }],
    ['an unknown top-level field', { external_id: 'u6', profile: { display_name: 'U' }, role: 'admin' }],
  ])('refuses %s without writing', async (_, input) => {
    await expectNoWrites(() => acme.users.create(input as never));
  });
});

describe('users.findByExternalId', () => {
  it('finds within the bound tenant only, and needs one', async () => {
    await acme.users.create({ external_id: 'bob', profile: { display_name: 'Bob' } });
    expect(await acme.users.findByExternalId('bob')).toMatchObject({ external_id: 'bob' });
    expect(await globex.users.findByExternalId('bob')).toBeNull();
    await expect(data.users.findByExternalId('bob')).rejects.toBeInstanceOf(TenantContextError);
    await expect(acme.users.findByExternalId('')).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('users status, profile and encryption keys', () => {
  it('sets status, patches the profile and rotates keys', async () => {
    const carol = await acme.users.create({ external_id: 'carol', profile: { display_name: 'Carol' } });
    expect((await acme.users.setStatus(carol._id, 'dnd')).profile.status).toBe('dnd');
    await expect(acme.users.setStatus(carol._id, 'busy' as never)).rejects.toBeInstanceOf(ValidationError);
    const renamed = await acme.users.update(carol._id, { profile: { display_name: 'Caroline' } });
    expect(renamed.profile).toMatchObject({ display_name: 'Caroline', status: 'dnd' });
    const first = await acme.users.rotateEncryptionKey(carol._id, 'pk-1');
    const second = await acme.users.rotateEncryptionKey(carol._id, 'pk-2');
    expect(first.encryption).toEqual({ public_key: 'pk-1', key_version: 1 });
    expect(second.encryption).toEqual({ public_key: 'pk-2', key_version: 2 });
    await expect(acme.users.rotateEncryptionKey(new ObjectId(), 'pk')).rejects.toBeInstanceOf(NotFoundError);
    await expectNoWrites(() => acme.users.rotateEncryptionKey(carol._id, ''));
  });
});

describe('users relationships', () => {
  it('adds and removes friend, blocked and muted relationships idempotently, also concurrently', async () => {
    const dave = await acme.users.create({ external_id: 'dave', profile: { display_name: 'Dave' } });
    const erin = new ObjectId();
    const added = await Promise.all(Array.from({ length: 10 }, () => acme.users.addRelationship(dave._id, erin, 'friend')));
    expect(added.filter(Boolean)).toHaveLength(1);
    expect(await acme.users.addRelationship(dave._id, erin, 'muted')).toBe(true);
    expect(await acme.users.relationshipsOf(dave._id, 'friend')).toEqual([erin]);
    expect(await acme.users.removeRelationship(dave._id, erin, 'friend')).toBe(true);
    expect(await acme.users.removeRelationship(dave._id, erin, 'friend')).toBe(false);
    expect(await acme.users.relationshipsOf(dave._id, 'muted')).toEqual([erin]);
    await expect(acme.users.addRelationship(new ObjectId(), erin, 'friend')).rejects.toBeInstanceOf(NotFoundError);
    await expectNoWrites(() => acme.users.addRelationship(dave._id, erin, 'enemy' as never));
    await expectNoWrites(() => acme.users.addRelationship(dave._id, 'not-an-id', 'friend'));
  });
});

describe('users.touchLastSeen', () => {
  it('writes at most once per resolution window, however many heartbeats', async () => {
    const frank = await acme.users.create({ external_id: 'frank', profile: { display_name: 'Frank' } });
    const writes: string[] = [];
    const stop = data.client.on('command:succeeded', (event) => {
      if (event.commandName === 'update' && event.collection === 'users') writes.push(event.commandName);
    });
    const start = new Date('2026-11-26T10:00:00Z');
    const beats = await Promise.all(
      Array.from({ length: 20 }, (_, index) => acme.users.touchLastSeen(frank._id, new Date(start.getTime() + index * 1000))),
    );
    stop();
    expect(beats.filter(Boolean).length).toBeGreaterThanOrEqual(1);
    expect(writes.length).toBeLessThanOrEqual(beats.filter(Boolean).length + 1);
    expect(await acme.users.touchLastSeen(frank._id, new Date(start.getTime() + 30_000))).toBe(false);
    expect(await acme.users.touchLastSeen(frank._id, new Date(start.getTime() + 120_000))).toBe(true);
    expect((await acme.users.getById(frank._id)).last_seen).toEqual(new Date(start.getTime() + 120_000));
    await expect(acme.users.touchLastSeen(frank._id, 'yesterday' as never)).rejects.toBeInstanceOf(ValidationError);
  });

  it('lists recently active users, most recent first', async () => {
    const page = await acme.users.listRecentlyActive({ limit: 10 });
    const times = page.items.map((user) => user.last_seen?.getTime() ?? 0);
    expect(times.length).toBeGreaterThan(0);
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });
});

describe('users soft delete', () => {
  it('hides a soft-deleted user from lookups and restores it', async () => {
    const gina = await acme.users.create({ external_id: 'gina', profile: { display_name: 'Gina' } });
    await acme.users.softDelete(gina._id);
    expect(await acme.users.findByExternalId('gina')).toBeNull();
    await acme.users.restore(gina._id);
    expect(await acme.users.findByExternalId('gina')).not.toBeNull();
  });
});
