import { createTestClient, requireCapability, skipTest } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDataLayer, currentSession, DuplicateKeyError, ObjectId, TransactionsUnsupportedError } from '../src/index.js';

const client = createTestClient();
const strict = createDataLayer({ client });
const lenient = createDataLayer({ client, transactions: 'best-effort' });

beforeAll(async () => {
  await strict.syncIndexes();
});

describe('withTransaction', () => {
  it('fails with TransactionsUnsupportedError on a deployment without transactions, running nothing', async (context) => {
    const capabilities = await client.capabilities();
    if (capabilities.transactions) return skipTest(context, 'this server has transactions; the next tests cover them');
    let ran = false;
    await expect(
      strict.withTransaction(async () => {
        ran = true;
      }),
    ).rejects.toBeInstanceOf(TransactionsUnsupportedError);
    expect(ran).toBe(false);
  });

  it('runs without a transaction and says so in an event when best-effort', async (context) => {
    const capabilities = await client.capabilities();
    if (capabilities.transactions) return skipTest(context, 'this server has transactions, so nothing is skipped');
    const skipped: string[] = [];
    lenient.on('transaction:skipped', ({ reason }) => skipped.push(reason));
    const acme = lenient.forTenant('acme');
    const user = await lenient.withTransaction(async () => {
      expect(currentSession()).toBeUndefined();
      return acme.users.create({ external_id: 'best-effort', profile: { display_name: 'B' } });
    });
    expect(await acme.users.findById(user._id)).not.toBeNull();
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatch(/no transactions/);
  });

  it('threads one session through every repository call and commits them together', async (context) => {
    requireCapability(context, 'transactions');
    const acme = strict.forTenant('acme');
    const { conversation, message } = await strict.withTransaction(async () => {
      const session = currentSession();
      expect(session).toBeDefined();
      const created = await acme.conversations.createGroup({ type: 'group', ownerId: new ObjectId() });
      const sent = await acme.messages.create({
        conversation_id: created._id,
        sender_id: new ObjectId(),
        content: { type: 'text', encrypted_data: 'dHg' },
      });
      expect(currentSession()).toBe(session);
      return { conversation: created, message: sent };
    });
    expect((await acme.conversations.getById(conversation._id)).last_message?.message_id).toEqual(message._id);
  });

  it('rolls every write back when the function throws', async (context) => {
    requireCapability(context, 'transactions');
    const acme = strict.forTenant('acme');
    const externalId = `rollback-${new ObjectId().toHexString()}`;
    await expect(
      strict.withTransaction(async () => {
        await acme.users.create({ external_id: externalId, profile: { display_name: 'R' } });
        await acme.users.create({ external_id: externalId, profile: { display_name: 'R again' } });
      }),
    ).rejects.toBeInstanceOf(DuplicateKeyError);
    expect(await acme.users.findByExternalId(externalId)).toBeNull();
  });
});
