import { auditLogsDefinition, InvariantError, ObjectId, ReferentialIntegrityError, Repository } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { describe, expect, it } from 'vitest';
import { createLifecycle, DAY_MS, RetentionError } from '../src/index.js';
import { cipher, START, setupLifecycle, strategies } from './support.js';

describe.each(strategies)('referential integrity, cascades, orphans and audit retention (%s strategy)', (strategy) => {
  const tenant = `ref-${strategy}`;
  const setup = setupLifecycle(strategy, [tenant], { audit: { keepDays: 400, minimumRetentionDays: 365 } });
  const { data, lifecycle, clock, client } = setup;
  const repositories = () => data.forTenant(tenant);
  const text = (seed: string) => ({ type: 'text' as const, encrypted_data: cipher(seed) });

  it('messages.create refuses a missing or deleted conversation and a non-participant sender, writing nothing', async () => {
    const [ann, ben, cat] = await repositories().users.createMany(
      ['ann', 'ben', 'cat'].map((name) => ({ external_id: name, profile: { display_name: name } })),
    );
    if (!ann || !ben || !cat) throw new Error('users');
    const group = await repositories().conversations.createGroup({ type: 'group', ownerId: ann._id, memberIds: [ben._id] });
    const gone = await repositories().conversations.createGroup({ type: 'group', ownerId: ann._id });
    await repositories().conversations.softDelete(gone._id);
    const refused = async (conversation: ObjectId, sender: ObjectId, problem: string) => {
      const error = await repositories()
        .messages.create({ conversation_id: conversation, sender_id: sender, content: text('no') })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ReferentialIntegrityError);
      expect(error).toMatchObject({ code: 'E_REFERENTIAL_INTEGRITY', problem });
    };
    const before = await setup.raw(tenant, 'messages');
    await refused(new ObjectId(), ann._id, 'conversation_missing');
    await refused(gone._id, ann._id, 'conversation_deleted');
    await refused(group._id, cat._id, 'sender_not_participant');
    expect(await setup.raw(tenant, 'messages')).toEqual(before);

    // Concurrent sends: the participants' all land, the outsider's all fail.
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, index) =>
        repositories().messages.create({
          conversation_id: group._id,
          sender_id: [ann, ben, cat][index % 3]?._id as ObjectId,
          content: text(`m${index}`),
        }),
      ),
    );
    const rejected = results.filter((result) => result.status === 'rejected');
    expect(rejected).toHaveLength(6);
    for (const result of rejected) expect((result as PromiseRejectedResult).reason).toBeInstanceOf(ReferentialIntegrityError);

    // This instance's own leave is seen at once, whatever the cache remembered.
    await repositories().conversations.leave(group._id, ben._id);
    await refused(group._id, ben._id, 'sender_not_participant');
  });

  it('cascades: a deleted conversation soft-deletes its messages; a user deleted for good leaves every conversation and group', async () => {
    const [dan, eve] = await repositories().users.createMany(
      ['dan', 'eve'].map((name) => ({ external_id: name, profile: { display_name: name } })),
    );
    if (!dan || !eve) throw new Error('users');
    const conversation = await repositories().conversations.createGroup({ type: 'group', ownerId: dan._id, memberIds: [eve._id] });
    await Promise.all(
      [dan, eve].map((user) =>
        repositories().messages.create({ conversation_id: conversation._id, sender_id: user._id, content: text('c') }),
      ),
    );
    expect(await repositories().conversations.softDelete(conversation._id)).toBe(true);
    const messages = await setup.raw(tenant, 'messages', { conversation_id: conversation._id });
    expect(messages.map((message) => message.status)).toEqual(['deleted', 'deleted']);
    expect(messages.every((message) => message.deleted_at instanceof Date)).toBe(true);

    const other = await repositories().conversations.createGroup({ type: 'group', ownerId: dan._id, memberIds: [eve._id] });
    const group = await repositories().groups.create({ name: 'g', owner_id: dan._id, member_ids: [eve._id] });
    expect(await repositories().users.delete(eve._id)).toBe(true);
    expect((await repositories().conversations.getById(other._id)).participants.map((participant) => String(participant.user_id))).toEqual([
      String(dan._id),
    ]);
    expect((await repositories().groups.getById(group._id)).member_ids).toEqual([]);
  });

  it('finds orphans left by writes that bypassed the cascades, and repairs them', async () => {
    const [fay, gus] = await repositories().users.createMany(
      ['fay', 'gus'].map((name) => ({ external_id: name, profile: { display_name: name } })),
    );
    if (!fay || !gus) throw new Error('users');
    const conversation = await repositories().conversations.createGroup({ type: 'group', ownerId: fay._id, memberIds: [gus._id] });
    const message = await repositories().messages.create({ conversation_id: conversation._id, sender_id: fay._id, content: text('o') });
    const kept = await repositories().conversations.createGroup({ type: 'group', ownerId: fay._id, memberIds: [gus._id] });
    const keptMessage = await repositories().messages.create({ conversation_id: kept._id, sender_id: fay._id, content: text('k') });
    await repositories().messages.addReaction(keptMessage._id, gus._id, '👍');
    const database = unsafeDatabase(client, await setup.databaseOf(tenant));
    // Raw deletes, as an old service or a manual fix might do: no cascade runs.
    await database.collection('conversations').deleteOne({ _id: conversation._id });
    await database.collection('users').deleteOne({ _id: gus._id });
    const found = await lifecycle.orphans(tenant);
    expect(found).toMatchObject({ messagesWithoutConversation: 1, missingUsersReferenced: 1, repaired: false });
    const repaired = await lifecycle.orphans(tenant, { repair: true });
    expect(repaired.repaired).toBe(true);
    expect(await setup.raw(tenant, 'messages', { _id: message._id })).toEqual([]);
    expect((await setup.raw(tenant, 'messages', { _id: keptMessage._id }))[0]?.reactions).toEqual([]);
    expect(await lifecycle.orphans(tenant)).toMatchObject({ messagesWithoutConversation: 0, missingUsersReferenced: 0 });
  });

  it('keeps audit entries their minimum: the purge is the only delete path, refuses younger cutoffs and logs itself', async () => {
    clock.set(START);
    await data.auditLogs.appendMany([
      {
        tenant_id: tenant,
        actor: { type: 'system', id: 't' },
        action: 'test.old',
        target: { collection: 'x' },
        at: new Date(START.getTime() - 500 * DAY_MS),
      },
      {
        tenant_id: tenant,
        actor: { type: 'system', id: 't' },
        action: 'test.recent',
        target: { collection: 'x' },
        at: new Date(START.getTime() - 100 * DAY_MS),
      },
    ]);
    // No other path deletes audit entries: a generic repository over audit_logs is refused by the invariants.
    const generic = data.repository(auditLogsDefinition, Repository);
    const [old] = (await data.auditLogs.listByAction('test.old')).items;
    await expect(generic.delete(old?._id ?? '')).rejects.toBeInstanceOf(InvariantError);
    // Younger than the minimum: refused by core whatever the caller asks.
    await expect(
      data.auditLogs.purgeExpired({ before: new Date(START.getTime() - 10 * DAY_MS), minimumRetentionDays: 365 }),
    ).rejects.toBeInstanceOf(InvariantError);
    expect(() => createLifecycle({ audit: { keepDays: 30, minimumRetentionDays: 365 } })).toThrow(RetentionError);

    const dry = await lifecycle.purgeAuditLogs({ dryRun: true });
    expect(dry).toBeGreaterThanOrEqual(1);
    const removed = await lifecycle.purgeAuditLogs();
    expect(removed).toBe(dry);
    expect((await data.auditLogs.listByAction('test.old')).items).toEqual([]);
    expect((await data.auditLogs.listByAction('test.recent')).items).toHaveLength(1);
    const [entry] = (await data.auditLogs.listByAction('audit_logs.purge')).items;
    expect(entry?.details).toMatchObject({ removed, minimum_retention_days: 365 });
  });
});
