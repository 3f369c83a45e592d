import { createTestClient, createTestDataLayer, requireCapability } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { createDataLayer, ObjectId, recommendedPresets, SlowQueryLog, summarizePlan } from '../src/index.js';
import { unsafeDriver } from '../src/unsafe.js';

describe('summarizePlan', () => {
  it('reads the index, covering, sorting and counts of a plan', () => {
    const fetch = {
      queryPlanner: {
        winningPlan: {
          stage: 'LIMIT',
          inputStage: { stage: 'FETCH', inputStage: { stage: 'IXSCAN', indexName: 'tenant_conversation_id' } },
        },
      },
      executionStats: { totalKeysExamined: 50, totalDocsExamined: 50, nReturned: 50 },
    };
    expect(summarizePlan(fetch)).toEqual({
      index: 'tenant_conversation_id',
      collectionScan: false,
      covered: false,
      inMemorySort: false,
      keysExamined: 50,
      docsExamined: 50,
      returned: 50,
      stages: ['LIMIT', 'FETCH', 'IXSCAN'],
    });
    const covered = {
      queryPlanner: { winningPlan: { stage: 'PROJECTION_COVERED', inputStage: { stage: 'IXSCAN', indexName: 'tenant_conversation_id' } } },
      executionStats: { totalKeysExamined: 1, totalDocsExamined: 0, nReturned: 1 },
    };
    expect(summarizePlan(covered)).toMatchObject({ covered: true, docsExamined: 0 });
    const scan = {
      queryPlanner: { winningPlan: { stage: 'SORT', inputStage: { stage: 'COLLSCAN' } } },
      executionStats: { totalKeysExamined: 0, totalDocsExamined: 900, nReturned: 3 },
    };
    expect(summarizePlan(scan)).toMatchObject({ index: undefined, collectionScan: true, inMemorySort: true, docsExamined: 900 });
    const slotBased = { queryPlanner: { winningPlan: { queryPlan: { stage: 'FETCH', inputStage: { stage: 'IXSCAN', indexName: 'i' } } } } };
    expect(summarizePlan(slotBased).index).toBe('i');
  });
});

describe('explain on the server', () => {
  const data = createTestDataLayer();

  it('shows history reads use their index, and the id-only read is covered', async (context) => {
    requireCapability(context, 'explain');
    const acme = data.forTenant('acme');
    const conversation = new ObjectId();
    await acme.messages.createMany(
      Array.from({ length: 20 }, () => ({
        conversation_id: conversation,
        sender_id: conversation,
        content: { type: 'text' as const, encrypted_data: 'eA' },
      })),
    );
    const plan = await acme.messages.explain({ conversation_id: conversation }, { sort: { _id: -1 }, limit: 10 });
    expect(plan).toMatchObject({ index: 'tenant_conversation_id', collectionScan: false, inMemorySort: false });
    const covered = await acme.messages.explain({ conversation_id: conversation } as never, { projection: { _id: 1 } });
    expect(covered.index).toBeDefined();
  });
});

describe('slow-query log', () => {
  it('records commands over the threshold with their shapes, never their values', async () => {
    const client = createTestClient();
    const data = createDataLayer({ client });
    const log = new SlowQueryLog(client, { thresholdMS: 0, capacity: 10 });
    const acme = data.forTenant('acme');
    await acme.users.create({ external_id: 'secret-external-id', profile: { display_name: 'Secret Name' } });
    await acme.users.findByExternalId('secret-external-id');
    log.detach();
    const entries = log.entries();
    expect(entries.map((entry) => entry.commandName)).toEqual(['insert', 'find']);
    expect(entries[1]).toMatchObject({
      collection: 'users',
      shape: JSON.stringify({ filter: { tenant_id: 'string', external_id: 'string', deleted_at: 'object' }, sort: null }),
    });
    expect(JSON.stringify(entries)).not.toContain('secret');
    expect(log.byShape()[0]?.count).toBe(1);
  });
});

describe('index usage', () => {
  it('lists every index of a collection with its use', async () => {
    const data = createDataLayer({ client: createTestClient() });
    await data.messages.syncIndexes();
    const usage = await data.messages.indexUsage();
    expect(usage.map((row) => row.index)).toEqual(expect.arrayContaining(['_id_', 'tenant_conversation_id', 'tenant_search_tokens']));
    expect(usage.every((row) => row.declared && row.accesses >= 0)).toBe(true);
  });
});

describe('presets per operation class', () => {
  it('sends billing writes with w: majority and journaling', async () => {
    const client = createTestClient();
    const data = createDataLayer({ client, presets: recommendedPresets });
    const sent: unknown[] = [];
    unsafeDriver(client).on('commandStarted', (event) => {
      if (event.commandName === 'update' && event.command.update === 'billing') sent.push(event.command.writeConcern);
    });
    await data.billing.recordUsage('acme', 'messages', 1);
    expect(sent[0]).toEqual({ w: 'majority', j: true });
    expect(() => createDataLayer({ client, presets: { billing: { writeConcern: { w: 'all' as never } } } })).toThrow(
      /presets.billing.writeConcern.w/,
    );
  });
});
