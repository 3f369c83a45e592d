/**
 * caas-db quick start: a tenant, two users, a conversation, a few messages, and a page of history.
 * Uses MONGODB_URI when set, otherwise starts an embedded test server through @caas-db/testing.
 */
import { createDataClient, ObjectId } from '@caas-db/core';
import { startMongo } from '@caas-db/testing';

const mongo = await startMongo();
const client = createDataClient({ uri: mongo.uri, database: 'caas_quickstart' });
const log = (line: string) => process.stdout.write(`${line}\n`);

try {
  log(`MongoDB: ${mongo.description}`);
  const tenant = 'acme';
  const [alice, bob] = [new ObjectId(), new ObjectId()];
  await client.execute({ name: 'seed', idempotent: true }, async (db) => {
    await db.collection('clients').insertOne({ _id: tenant as never, name: 'Acme Inc.', status: 'active', plan: 'pro' });
    await db.collection('users').insertMany([
      { _id: alice, tenant_id: tenant, external_id: 'alice', profile: { display_name: 'Alice' } },
      { _id: bob, tenant_id: tenant, external_id: 'bob', profile: { display_name: 'Bob' } },
    ]);
  });
  log(`created tenant ${tenant} with users alice and bob`);

  const conversationId = new ObjectId();
  await client.execute({ name: 'conversation', idempotent: true }, (db) =>
    db.collection('conversations').insertOne({ _id: conversationId, tenant_id: tenant, type: 'direct', participants: [alice, bob] }),
  );
  for (let index = 1; index <= 5; index += 1) {
    await client.execute({ name: 'message', idempotent: true }, (db) =>
      db.collection('messages').insertOne({
        tenant_id: tenant,
        conversation_id: conversationId,
        sender_id: index % 2 ? alice : bob,
        content: { type: 'text', encrypted_data: `ciphertext-${index}` },
        created_at: new Date(),
      }),
    );
  }
  log('sent 5 messages');

  const page = await client.execute({ name: 'history', idempotent: true }, (db) =>
    db.collection('messages').find({ tenant_id: tenant, conversation_id: conversationId }).sort({ _id: -1 }).limit(3).toArray(),
  );
  log(`newest page of history: ${page.map((message) => message.content.encrypted_data).join(', ')}`);
  log(`health: ${JSON.stringify(await client.health())}`);
} finally {
  await client.close();
  await mongo.stop();
}
