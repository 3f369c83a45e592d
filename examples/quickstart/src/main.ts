/**
 * caas-db quick start: a tenant, two users, a direct and a group conversation, messages with a
 * reaction, a thread reply and a read receipt, a page of history, and a soft delete; then a second
 * tenant side by side, each seeing only its own data.
 *
 * Uses MONGODB_URI when set, otherwise starts an embedded test server through @caas-db/testing.
 */
import { createDataClient, createDataLayer } from '@caas-db/core';
import { createTenancy, runWithTenant, TenantContextError } from '@caas-db/tenancy';
import { startMongo } from '@caas-db/testing';

const log = (line: string) => process.stdout.write(`${line}\n`);
const mongo = await startMongo();
const client = createDataClient({ uri: mongo.uri, database: `caas_quickstart_${Date.now()}`, monitoring: { wire: true } });
// Tenancy: every command scoped to one tenant; the auditor (it needs the wire monitoring turned on
// above) also refuses anything unscoped it sees on the wire, as defence in depth.
const tenancy = createTenancy({ audit: 'enforce' });
const data = createDataLayer({ client, cursorSecret: 'quickstart-secret-of-at-least-32-chars', plugins: [tenancy] });

try {
  log(`MongoDB: ${mongo.description}`);
  await data.syncIndexes();

  const tenant = await data.clients.create({ tenant_id: 'acme', name: 'Acme Inc.', region: 'eu-west-1', plan: 'pro' });
  log(`tenant ${tenant.tenant_id} (${tenant.plan}, ${tenant.region})`);
  const acme = data.forTenant(tenant.tenant_id);

  const alice = await acme.users.create({ external_id: 'alice', profile: { display_name: 'Alice', status: 'online' } });
  const bob = await acme.users.create({ external_id: 'bob', profile: { display_name: 'Bob' } });
  log(`users: ${alice.profile.display_name} and ${bob.profile.display_name}`);

  const { conversation: direct } = await acme.conversations.createDirect([alice._id, bob._id]);
  const group = await acme.conversations.createGroup({
    type: 'group',
    ownerId: alice._id,
    memberIds: [bob._id],
    metadata: { name: 'Launch team' },
  });
  log(`conversations: a direct one and the group "${group.metadata.name}"`);

  // Content is end-to-end encrypted by the clients: the library stores ciphertext only.
  const ciphertext = (plaintext: string) => Buffer.from(plaintext).toString('base64');
  const hello = await acme.messages.create({
    conversation_id: direct._id,
    sender_id: alice._id,
    content: { type: 'text', encrypted_data: ciphertext('Hello Bob!') },
  });
  for (const line of ['Are we on for Friday?', 'I will bring the slides.', 'See you then.']) {
    await acme.messages.create({
      conversation_id: direct._id,
      sender_id: alice._id,
      content: { type: 'text', encrypted_data: ciphertext(line) },
    });
  }
  await acme.messages.create({
    conversation_id: group._id,
    sender_id: bob._id,
    content: { type: 'text', encrypted_data: ciphertext('Welcome, team') },
  });
  log('sent 5 messages');

  await acme.messages.addReaction(hello._id, bob._id, '👋');
  const reply = await acme.messages.create({
    conversation_id: direct._id,
    sender_id: bob._id,
    content: { type: 'text', encrypted_data: ciphertext('Hi Alice!') },
    thread: { parent_id: hello._id },
  });
  await acme.messages.markAsRead(hello._id, bob._id);
  const greeting = await acme.messages.getById(hello._id);
  log(`first message: ${greeting.reactions.length} reaction, ${greeting.thread?.reply_count} reply, status ${greeting.status}`);

  const page = await acme.messages.findByConversation(direct._id, { limit: 3 });
  const decode = (encrypted: string) => Buffer.from(encrypted, 'base64').toString();
  log(`newest page of history: ${page.items.map((message) => `"${decode(message.content.encrypted_data)}"`).join(', ')}`);
  const next = await acme.messages.findByConversation(direct._id, { limit: 3, cursor: page.nextCursor });
  log(`next page: ${next.items.map((message) => `"${decode(message.content.encrypted_data)}"`).join(', ')}`);

  await acme.messages.softDelete(reply._id);
  const remaining = await acme.messages.findByConversation(direct._id, { limit: 50 });
  log(
    `after a soft delete: ${remaining.items.length} visible messages, reply count ${(await acme.messages.getById(hello._id)).thread?.reply_count}`,
  );

  const conversations = await acme.conversations.listForUser(alice._id);
  log(
    `Alice's conversations by activity: ${conversations.items.map((conversation) => conversation.metadata.name ?? conversation.type).join(', ')}`,
  );

  // A second tenant, with users of the same external ids and a conversation of its own.
  await data.clients.create({ tenant_id: 'globex', name: 'Globex Corp.', region: 'us-east-1' });
  await runWithTenant('globex', async () => {
    const [gAlice, gBob] = await Promise.all([
      data.users.create({ external_id: 'alice', profile: { display_name: 'Alice of Globex' } }),
      data.users.create({ external_id: 'bob', profile: { display_name: 'Bob of Globex' } }),
    ]);
    const { conversation } = await data.conversations.createDirect([gAlice._id, gBob._id]);
    await data.messages.create({
      conversation_id: conversation._id,
      sender_id: gAlice._id,
      content: { type: 'text', encrypted_data: ciphertext('Globex only') },
    });
  });
  for (const tenantId of ['acme', 'globex']) {
    const repositories = data.forTenant(tenantId);
    const user = await repositories.users.findByExternalId('alice');
    const own = user ? await repositories.conversations.listForUser(user._id, { limit: 50 }) : { items: [] };
    log(
      `${tenantId}: alice is "${user?.profile.display_name}", ${own.items.length} conversations, ${await repositories.messages.count()} messages`,
    );
  }
  const crossTenant = await data.forTenant('globex').messages.findById(hello._id);
  log(`globex reading acme's first message by id: ${crossTenant === null ? 'not found' : 'LEAKED'}`);
  const unbound = await data.messages.count().catch((error: unknown) => error);
  log(`a query with no tenant: ${unbound instanceof TenantContextError ? 'refused (TenantContextError)' : 'ran'}`);
} finally {
  await data.admin.dropDatabase().catch(() => undefined);
  await client.close();
  await mongo.stop();
}
