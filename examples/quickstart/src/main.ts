/**
 * caas-db quick start: a tenant, two users, a direct and a group conversation, messages with a
 * reaction, a thread reply and a read receipt, a page of history, and a soft delete.
 *
 * Uses MONGODB_URI when set, otherwise starts an embedded test server through @caas-db/testing.
 */
import { createDataClient, createDataLayer } from '@caas-db/core';
import { startMongo } from '@caas-db/testing';

const log = (line: string) => process.stdout.write(`${line}\n`);
const mongo = await startMongo();
const client = createDataClient({ uri: mongo.uri, database: `caas_quickstart_${Date.now()}` });
const data = createDataLayer({ client, cursorSecret: 'quickstart-secret-of-at-least-32-chars' });

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
} finally {
  await client.execute({ name: 'dropQuickstart', idempotent: true }, (db) => db.dropDatabase()).catch(() => undefined);
  await client.close();
  await mongo.stop();
}
