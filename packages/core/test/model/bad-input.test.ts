import { createTestDataLayer, snapshotDatabase } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { ObjectId } from '../../src/index.js';

/**
 * Every public read and write method of the data model, called with bad arguments: each must fail
 * with a typed error (ValidationError, or TenantContextError where no tenant is bound) and leave
 * the database exactly as it was.
 */
const data = createTestDataLayer();
const acme = data.forTenant('acme');
const id = new ObjectId();
const range = { from: new Date(0), to: new Date() };
const injection = { $ne: null } as never;

beforeAll(async () => {
  await acme.users.create({ external_id: 'seed', profile: { display_name: 'Seed' } });
  await data.clients.create({ tenant_id: 'acme', name: 'Acme', region: 'eu-west-1' });
});

const calls: Array<[string, () => Promise<unknown>]> = [
  ['users.findByExternalId (operator object)', () => acme.users.findByExternalId(injection)],
  ['users.setStatus (invalid id)', () => acme.users.setStatus('x', 'online')],
  ['users.touchLastSeen (invalid date)', () => acme.users.touchLastSeen(id, new Date('nope'))],
  ['users.rotateEncryptionKey (too long)', () => acme.users.rotateEncryptionKey(id, 'k'.repeat(8193))],
  ['users.relationshipsOf (invalid type)', () => acme.users.relationshipsOf(id, 'enemy' as never)],
  ['users.listRecentlyActive (limit 0)', () => acme.users.listRecentlyActive({ limit: 0 })],
  ['users.listRecentlyActive (unbound)', () => data.users.listRecentlyActive()],
  ['users.update (unknown field)', () => acme.users.update(id, { nickname: 'x' } as never)],
  ['users.findMany (cursor garbage)', () => acme.users.findMany({}, { cursor: '!!' })],
  ['users.findMany ($where)', () => acme.users.findMany({ $where: 'true' } as never)],
  ['users.count (function value)', () => acme.users.count({ external_id: (() => 1) as never })],
  ['users.exists (__proto__ key)', () => acme.users.exists(JSON.parse('{"__proto__": {"x": 1}}'))],
  ['users.createMany (not an array)', () => acme.users.createMany('x' as never)],
  ['users.upsert (bad input)', () => acme.users.upsert({ external_id: 'x' }, { external_id: 'x', profile: {} } as never)],
  ['users.findOneAndUpdate (bad operator)', () => acme.users.findOneAndUpdate({ external_id: 'seed' }, { $rename: { a: 'b' } })],
  ['users.updateMany (protected field)', () => acme.users.updateMany({}, { $set: { created_at: new Date() } })],
  ['users.bulkWrite (bad op)', () => acme.users.bulkWrite([{ delete: { id: 'x' } }])],
  ['conversations.listForUser (invalid id)', () => acme.conversations.listForUser('x')],
  ['conversations.listByType (unknown type)', () => acme.conversations.listByType('dm' as never)],
  ['conversations.isParticipant (invalid id)', () => acme.conversations.isParticipant(id, 12 as never)],
  ['conversations.leave (invalid id)', () => acme.conversations.leave('x', id)],
  ['conversations.join (owner role)', () => acme.conversations.join(id, id, 'owner' as never)],
  ['conversations.setPinned (not boolean)', () => acme.conversations.setPinned(id, id, 1 as never)],
  ['messages.listReplies (invalid id)', () => acme.messages.listReplies('x')],
  ['messages.listBySender (invalid id)', () => acme.messages.listBySender(injection)],
  ['messages.recountReplies (invalid id)', () => acme.messages.recountReplies('x')],
  ['messages.findInRange (missing to)', () => acme.messages.findInRange(id, { from: new Date() } as never)],
  ['messages.markDelivered (invalid id)', () => acme.messages.markDelivered('x')],
  ['messages.removeReaction (empty emoji)', () => acme.messages.removeReaction(id, id, '')],
  ['messages.edit (invalid sender)', () => acme.messages.edit(id, 'x', { encrypted_data: 'x' })],
  [
    'messages.searchMessages (too many tokens)',
    () => acme.messages.searchMessages(Array.from({ length: 33 }, (_, index) => `token_${index}_xx`)),
  ],
  ['messages.restore (invalid id)', () => acme.messages.restore('x')],
  ['files.listByUploader (invalid id)', () => acme.files.listByUploader('x')],
  ['files.listSharedInConversation (invalid date)', () => acme.files.listSharedInConversation(id, { at: 'now' as never })],
  ['files.findByStorageKey (unknown provider)', () => acme.files.findByStorageKey('dropbox' as never, 'b', 'k')],
  ['files.share (unknown type)', () => acme.files.share(id, { type: 'everyone' } as never)],
  ['files.isVisibleIn (invalid id)', () => acme.files.isVisibleIn(id, 'x')],
  ['groups.removeMember (invalid id)', () => acme.groups.removeMember(id, 'x')],
  ['groups.listOwnedBy (invalid id)', () => acme.groups.listOwnedBy('x')],
  ['settings.get (invalid user)', () => acme.settings.get('x')],
  ['settings.unset (empty key)', () => acme.settings.unset('')],
  ['settings.resolve (invalid user)', () => acme.settings.resolve('x')],
  ['clients.findByTenantId (operator object)', () => data.clients.findByTenantId(injection)],
  ['clients.activate (invalid tenant)', () => data.clients.activate('UPPER')],
  ['clients.listByStatus (unknown status)', () => data.clients.listByStatus('deleted' as never)],
  ['applications.listForTenant (invalid tenant)', () => data.applications.listForTenant('')],
  ['apiKeys.listForTenant (invalid tenant)', () => data.apiKeys.listForTenant('$x')],
  ['apiKeys.revoke (invalid id)', () => data.apiKeys.revoke('x')],
  ['billing.setPlan (unknown plan)', () => data.billing.setPlan('acme', 'gold' as never)],
  ['billing.currentPlan (invalid date)', () => data.billing.currentPlan('acme', new Date('x'))],
  ['auditLogs.listForTenant (invalid tenant)', () => data.auditLogs.listForTenant('A B')],
  ['auditLogs.listByAction (invalid action)', () => data.auditLogs.listByAction('DROP')],
  ['auditLogs.listForTarget (empty id)', () => data.auditLogs.listForTarget('users', '')],
  ['auditLogs.findById (invalid id)', () => data.auditLogs.findById('x')],
  ['events.listInRange (inverted types)', () => acme.events.listInRange({ from: 'yesterday', to: 'today' } as never)],
  ['events.listByType (invalid type)', () => acme.events.listByType('Bad Type', range)],
  ['metrics.query (invalid name)', () => acme.metrics.query('Bad Name', range)],
  ['metrics.query (unbound)', () => data.metrics.query('ok', range)],
  ['aggregations.get (invalid kind)', () => acme.aggregations.get('Daily Messages', '2026')],
  ['aggregations.listPeriods (invalid period)', () => acme.aggregations.listPeriods('daily', 'x', 'y')],
  ['forTenant (invalid tenant id)', async () => data.forTenant('../admin')],
];

describe('bad input on every entry point', () => {
  it.each(calls)('%s → typed error, database unchanged', async (_, call) => {
    const before = await snapshotDatabase(data.client);
    const error = await call().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error, 'the call should have been refused').toBeDefined();
    expect((error as { code?: string }).code).toMatch(/^E_(VALIDATION|TENANT_CONTEXT|CURSOR)$/);
    expect(await snapshotDatabase(data.client)).toEqual(before);
  });
});
