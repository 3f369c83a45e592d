import { createTestDataLayer, refusalCheck } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { ConcurrencyError, DuplicateKeyError, NotFoundError, ObjectId, TenantContextError, ValidationError } from '../../src/index.js';

const data = createTestDataLayer();
const acme = data.forTenant('acme');
const globex = data.forTenant('globex');

const expectNoWrites = refusalCheck(data.client, ValidationError);

const uploader = new ObjectId();
const file = (key: string) => ({
  uploader_id: uploader,
  storage: { provider: 's3' as const, bucket: 'caas-files', key, cdn_url: `https://cdn.example.com/${key}` },
  metadata: {
    filename: `${key}.png`,
    mime_type: 'image/png',
    size: 1024,
    checksum: 'sha256:abcdef0123456789',
    dimensions: { width: 10, height: 20 },
  },
  encryption: { algorithm: 'AES-256-GCM' as const, encrypted_key: 'a2V5' },
});

describe('files', () => {
  it('stores metadata, finds by storage key, lists by uploader', async () => {
    const stored = await acme.files.create(file('a'));
    expect(stored.sharing).toEqual({ type: 'private' });
    expect(await acme.files.findByStorageKey('s3', 'caas-files', 'a')).toMatchObject({ _id: stored._id });
    expect(await globex.files.findByStorageKey('s3', 'caas-files', 'a')).toBeNull();
    await expect(acme.files.create(file('a'))).rejects.toBeInstanceOf(DuplicateKeyError);
    await acme.files.create(file('b'));
    const page = await acme.files.listByUploader(uploader, { limit: 1 });
    expect(page.items).toHaveLength(1);
    expect((await acme.files.listByUploader(uploader, { cursor: page.nextCursor })).items).toHaveLength(1);
  });

  it('shares in a conversation with expiry', async () => {
    const conversation = new ObjectId();
    const stored = await acme.files.create(file('shared'));
    const now = new Date('2026-11-26T12:00:00Z');
    await acme.files.share(stored._id, { type: 'chat', conversation_id: conversation, expiry: new Date(now.getTime() + 60_000) });
    expect(await acme.files.isVisibleIn(stored._id, conversation, now)).toBe(true);
    expect(await acme.files.isVisibleIn(stored._id, new ObjectId(), now)).toBe(false);
    expect(await acme.files.isVisibleIn(stored._id, conversation, new Date(now.getTime() + 120_000))).toBe(false);
    expect((await acme.files.listSharedInConversation(conversation, { at: now })).items.map((item) => item._id)).toEqual([stored._id]);
    expect((await acme.files.listSharedInConversation(conversation, { at: new Date(now.getTime() + 120_000) })).items).toEqual([]);
    await expectNoWrites(() => acme.files.share(stored._id, { type: 'chat' }));
    await expect(acme.files.isVisibleIn(new ObjectId(), conversation)).rejects.toBeInstanceOf(NotFoundError);
  });

  it.each([
    ['a negative size', { ...file('n1'), metadata: { ...file('n1').metadata, size: -1 } }],
    ['an http CDN url', { ...file('n2'), storage: { ...file('n2').storage, cdn_url: 'http://cdn.example.com/x' } }],
    ['an unknown provider', { ...file('n3'), storage: { ...file('n3').storage, provider: 'ftp' } }],
    ['a malformed MIME type', { ...file('n4'), metadata: { ...file('n4').metadata, mime_type: 'png' } }],
    ['an unknown encryption algorithm', { ...file('n5'), encryption: { algorithm: 'ROT13', encrypted_key: 'x' } }],
  ])('refuses %s without writing', async (_, input) => {
    await expectNoWrites(() => acme.files.create(input as never));
  });
});

describe('groups', () => {
  it('adds and removes members idempotently, also concurrently, and lists by member and owner', async () => {
    const owner = new ObjectId();
    const member = new ObjectId();
    const group = await acme.groups.create({ name: 'Designers', owner_id: owner });
    const added = await Promise.all(Array.from({ length: 10 }, () => acme.groups.addMember(group._id, member)));
    expect(added.filter(Boolean)).toHaveLength(1);
    expect((await acme.groups.listForMember(member)).items.map((item) => item._id)).toEqual([group._id]);
    expect((await acme.groups.listOwnedBy(owner)).items).toHaveLength(1);
    expect(await acme.groups.removeMember(group._id, member)).toBe(true);
    expect(await acme.groups.removeMember(group._id, member)).toBe(false);
    await expect(acme.groups.addMember(new ObjectId(), member)).rejects.toBeInstanceOf(NotFoundError);
    await expect(acme.groups.update(group._id, { name: 'Stale' }, { expectedVersion: 1 })).rejects.toBeInstanceOf(ConcurrencyError);
    await expectNoWrites(() => acme.groups.create({ name: '', owner_id: owner }));
    await expect(data.groups.listForMember(member)).rejects.toBeInstanceOf(TenantContextError);
  });
});

describe('settings', () => {
  it('keeps tenant and user settings apart and resolves user over tenant', async () => {
    const user = new ObjectId();
    await acme.settings.set('theme', 'dark');
    await acme.settings.set('retention_days', 30);
    await acme.settings.set('theme', 'light', user);
    expect(await acme.settings.get()).toEqual({ theme: 'dark', retention_days: 30 });
    expect(await acme.settings.get(user)).toEqual({ theme: 'light' });
    expect(await acme.settings.resolve(user)).toEqual({ theme: 'light', retention_days: 30 });
    expect(await globex.settings.get()).toEqual({});
    expect(await acme.settings.unset('theme', user)).toBe(true);
    expect(await acme.settings.unset('theme', user)).toBe(false);
    expect(await acme.settings.resolve(user)).toEqual({ theme: 'dark', retention_days: 30 });
  });

  it('creates one settings document per owner under concurrent first writes', async () => {
    const user = new ObjectId();
    await Promise.all(Array.from({ length: 10 }, (_, index) => acme.settings.set(`k${index}`, index, user)));
    expect(Object.keys(await acme.settings.get(user))).toHaveLength(10);
    expect(await acme.settings.count({ owner_key: `user:${user.toHexString()}` })).toBe(1);
  });

  it.each([
    ['a $-prefixed key', () => acme.settings.set('$set', 1)],
    ['a dotted key', () => acme.settings.set('a.b', 1)],
    ['a function value', () => acme.settings.set('f', () => 1)],
    ['a nested $ key', () => acme.settings.set('privacy', { $where: 'x' })],
    ['an invalid user id', () => acme.settings.set('theme', 'dark', 'nobody')],
  ])('refuses %s without writing', async (_, action) => {
    await expectNoWrites(action);
  });
});
