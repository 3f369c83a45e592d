import {
  aggregationsDefinition,
  apiKeysDefinition,
  applicationsDefinition,
  applySharding,
  auditLogsDefinition,
  billingDefinition,
  ConfigError,
  clientsDefinition,
  conversationsDefinition,
  createDataLayer,
  createQueryShapeChecker,
  eventsDefinition,
  filesDefinition,
  groupsDefinition,
  messagesDefinition,
  metricsDefinition,
  ObjectId,
  planSharding,
  planZones,
  type QueryShape,
  recommendedShardKeys,
  ShardingUnavailableError,
  settingsDefinition,
  shapeTargeting,
  targetingOf,
  usersDefinition,
  ValidationError,
} from '@caas-db/core';
import { unsafeDriver } from '@caas-db/core/unsafe';
import { createTestClient, skipTest } from '@caas-db/testing/vitest';
import { MinKey } from 'mongodb';
import { describe, expect, it } from 'vitest';

const model = [
  usersDefinition(),
  conversationsDefinition,
  messagesDefinition,
  filesDefinition,
  groupsDefinition,
  settingsDefinition,
  eventsDefinition,
  metricsDefinition,
  aggregationsDefinition,
  clientsDefinition,
  applicationsDefinition,
  apiKeysDefinition,
  billingDefinition,
  auditLogsDefinition,
];

describe('planSharding', () => {
  it('shards every tenant-owned collection of the model on a tenant_id-prefixed key its declared indexes support', () => {
    const plan = planSharding({ database: 'caas', definitions: model });
    expect(plan.collections.flatMap((collection) => collection.problems)).toEqual([]);
    for (const definition of model.filter((candidate) => candidate.tenantOwned)) {
      const collection = plan.collections.find((candidate) => candidate.collection === definition.collection);
      expect(collection?.sharded, definition.collection).toBe(true);
      expect(Object.keys(collection?.key ?? {})[0]).toBe('tenant_id');
      expect(collection?.supportingIndex, definition.collection).toBeDefined();
    }
    expect(plan.collections.filter((collection) => !collection.sharded).map((collection) => collection.collection)).toEqual([
      'clients',
      'applications',
      'api_keys',
    ]);
    expect(plan.collections.find((collection) => collection.collection === 'events')?.strategy).toBe('hashed');
    expect(plan.collections.find((collection) => collection.collection === 'messages')?.strategy).toBe('ranged');
  });

  it('produces exactly the hand-checked commands, zones before the hashed pre-split', () => {
    const plan = planSharding({
      database: 'caas',
      definitions: [messagesDefinition, eventsDefinition, apiKeysDefinition],
      zones: {
        zones: { 'eu-west-1': ['shard-eu-1'], 'us-east-1': ['shard-us-1'] },
        tenants: { delta: 'eu-west-1', acme: 'eu-west-1', cobalt: 'us-east-1', beta: 'eu-west-1' },
      },
    });
    const min = new MinKey();
    const messages = (tenant: string) => ({ tenant_id: tenant, conversation_id: min, _id: min });
    const events = (tenant: string) => ({ tenant_id: tenant, _id: min });
    expect(plan.commands.map(({ database, command }) => ({ database, command }))).toEqual([
      { database: 'admin', command: { enableSharding: 'caas' } },
      {
        database: 'caas',
        command: {
          createIndexes: 'messages',
          indexes: [{ key: { tenant_id: 1, conversation_id: 1, _id: 1 }, name: 'tenant_conversation_id' }],
        },
      },
      { database: 'caas', command: { createIndexes: 'events', indexes: [{ key: { tenant_id: 1, _id: 'hashed' }, name: 'shard_key' }] } },
      { database: 'admin', command: { addShardToZone: 'shard-eu-1', zone: 'eu-west-1' } },
      { database: 'admin', command: { addShardToZone: 'shard-us-1', zone: 'us-east-1' } },
      // acme and beta are adjacent in tenant_id order and both in eu-west-1: one range.
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.messages', min: messages('acme'), max: messages('beta\u0000'), zone: 'eu-west-1' },
      },
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.messages', min: messages('cobalt'), max: messages('cobalt\u0000'), zone: 'us-east-1' },
      },
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.messages', min: messages('delta'), max: messages('delta\u0000'), zone: 'eu-west-1' },
      },
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.events', min: events('acme'), max: events('beta\u0000'), zone: 'eu-west-1' },
      },
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.events', min: events('cobalt'), max: events('cobalt\u0000'), zone: 'us-east-1' },
      },
      {
        database: 'admin',
        command: { updateZoneKeyRange: 'caas.events', min: events('delta'), max: events('delta\u0000'), zone: 'eu-west-1' },
      },
      { database: 'admin', command: { shardCollection: 'caas.messages', key: { tenant_id: 1, conversation_id: 1, _id: 1 } } },
      { database: 'admin', command: { shardCollection: 'caas.events', key: { tenant_id: 1, _id: 'hashed' }, presplitHashedZones: true } },
    ]);
  });

  it('reports a key no declared index supports and a unique index it does not prefix', () => {
    const plan = planSharding({
      database: 'caas',
      definitions: [apiKeysDefinition],
      shardKeys: { api_keys: { key: { tenant_id: 1, _id: 1 }, reason: 'test' } },
    });
    expect(plan.collections[0]?.problems).toEqual([
      'no declared index starts with the shard key {"tenant_id":1,"_id":1}: declare one in the model',
      'unique index prefix does not start with the shard key: MongoDB cannot enforce it across shards',
    ]);
  });

  it('refuses invalid options with ConfigError', () => {
    expect(() => planSharding({ database: 'bad.name', definitions: [] })).toThrow(ConfigError);
    expect(() =>
      planZones({ database: 'caas', collections: [], layout: { zones: { 'eu-west-1': ['a'] }, tenants: { acme: 'us-east-1' } } }),
    ).toThrow(/region us-east-1 maps to no zone/);
    expect(() => planZones({ database: 'caas', collections: [], layout: { zones: { eu: [] }, tenants: {} } })).toThrow(ConfigError);
  });
});

describe('targeting', () => {
  it('classifies by the shard key prefix', () => {
    const key = { tenant_id: 1, conversation_id: 1, _id: 1 };
    expect(targetingOf(key, ['tenant_id', 'conversation_id', '_id'])).toBe('single-shard');
    expect(targetingOf(key, ['tenant_id', 'conversation_id'])).toBe('targeted');
    expect(targetingOf(key, ['conversation_id', '_id'])).toBe('scatter-gather');
  });

  it('finds no scatter-gather query shape in the model that its shard key declaration does not allow', () => {
    const shapes = shapeTargeting(model, recommendedShardKeys);
    const scattering = shapes.filter((shape) => shape.targeting === 'scatter-gather');
    expect(scattering.filter((shape) => shape.allowed === undefined)).toEqual([]);
    expect(scattering.map((shape) => `${shape.collection}.${shape.shape}`)).toEqual(
      expect.arrayContaining(['audit_logs.findById', 'audit_logs.listByAction', 'audit_logs.listForTarget']),
    );
    expect(scattering.every((shape) => shape.collection === 'audit_logs')).toBe(true);
    expect(shapes.find((shape) => shape.collection === 'users' && shape.shape === 'findByExternalId')?.targeting).toBe('single-shard');
    expect(shapes.find((shape) => shape.collection === 'messages' && shape.shape === 'findByConversation')?.targeting).toBe('targeted');
  });

  it('reports scatter-gather queries at runtime, not those of a tenant or of allowed shapes', async () => {
    const client = createTestClient();
    const shapes = new Map<string, readonly QueryShape[]>(model.map((definition) => [definition.collection, definition.queries]));
    const checker = createQueryShapeChecker(shapes, { shardKeys: recommendedShardKeys });
    const data = createDataLayer({ client, observers: [checker] });
    await data.forTenant('acme').messages.findByConversation(new ObjectId());
    await data.auditLogs.listByAction('user.delete');
    await data.messages.count({ conversation_id: new ObjectId() } as never);
    expect(checker.scatterGather()).toEqual([
      { collection: 'messages', operation: 'messages.count', equality: ['conversation_id', 'deleted_at'] },
    ]);
  });
});

describe('applySharding', () => {
  it('refuses a plan with problems before sending anything', async () => {
    const client = createTestClient();
    const data = createDataLayer({ client });
    const sent: string[] = [];
    (unsafeDriver(client) as unknown as { monitorCommands: boolean }).monitorCommands = true;
    unsafeDriver(client).on('commandStarted', (event) => sent.push(event.commandName));
    const plan = planSharding({
      database: client.databaseName,
      definitions: [apiKeysDefinition],
      shardKeys: { api_keys: { key: { tenant_id: 1 }, reason: 'x' } },
    });
    await expect(applySharding(data, plan)).rejects.toBeInstanceOf(ValidationError);
    expect(sent).toEqual([]);
  });

  it('needs a mongos: elsewhere it fails with ShardingUnavailableError after one topology check', async (context) => {
    const client = createTestClient();
    const data = createDataLayer({ client });
    const hello = await data.admin.runCommand('admin', { isMaster: 1 });
    const plan = planSharding({ database: client.databaseName, definitions: model });
    if (hello.msg !== 'isdbgrid') {
      const sent: string[] = [];
      (unsafeDriver(client) as unknown as { monitorCommands: boolean }).monitorCommands = true;
      unsafeDriver(client).on('commandStarted', (event) => sent.push(event.commandName));
      await expect(applySharding(data, plan)).rejects.toBeInstanceOf(ShardingUnavailableError);
      expect(sent).toEqual(['isMaster']);
      skipTest(context, 'applying the plan needs a mongos (MONGODB_URI of a sharded cluster); the refusal off a mongos was checked');
    }
    await data.syncIndexes();
    const first = await applySharding(data, plan);
    expect(first.filter((step) => step.command === 'shardCollection').every((step) => step.outcome === 'applied')).toBe(true);
    const again = await applySharding(data, plan);
    expect(again.filter((step) => step.command === 'shardCollection').every((step) => step.outcome === 'matched')).toBe(true);
  });

  it('validates admin.runCommand input', async () => {
    const data = createDataLayer({ client: createTestClient() });
    await expect(data.admin.runCommand('bad.db', { ping: 1 })).rejects.toBeInstanceOf(ValidationError);
    await expect(data.admin.runCommand('admin', {})).rejects.toBeInstanceOf(ValidationError);
    expect(await data.admin.runCommand('admin', { ping: 1 })).toMatchObject({ ok: 1 });
  });
});
