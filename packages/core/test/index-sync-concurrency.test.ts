/**
 * Index sync run by several instances at once (every instance syncs at start-up): each must
 * succeed and leave the declared indexes, whatever a peer dropped or created meanwhile.
 */
import { createTestClient, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataClient, createDataLayer, type IndexSyncReport, type Middleware } from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const ROUNDS = 20;
const options = { dropExtra: true, rebuildDifferent: true } as const;

const first = createTestClient();
const second = createDataClient({ uri: testEnvironment().mongo.uri, database: first.databaseName });
const layers = [createDataLayer({ client: first }), createDataLayer({ client: second })] as const;

beforeAll(async () => {
  await layers[0].syncIndexes();
});

afterAll(async () => {
  await second.close();
});

/** Drift of every kind on two collections: an index no declaration names, one with other options, one missing. */
async function drift(round: number): Promise<void> {
  const database = unsafeDatabase(first);
  const groups = database.collection('groups');
  await groups.createIndex({ name: 1 }, { name: `legacy_name_${round}` });
  await groups.dropIndex('tenant_owner');
  await groups.createIndex({ tenant_id: 1, owner_id: 1, _id: -1 }, { name: 'tenant_owner', sparse: true });
  await groups.dropIndex('tenant_member');
  const users = database.collection('users');
  await users.createIndex({ 'profile.display_name': 1 }, { name: `legacy_display_name_${round}` });
  await users.dropIndex('tenant_external_id');
  await users.createIndex({ tenant_id: 1, external_id: 1 }, { name: 'tenant_external_id', unique: false, sparse: true });
}

describe('syncIndexes by two instances at once', () => {
  it(`${ROUNDS} rounds of two concurrent syncs with dropExtra and rebuildDifferent: no failure, the declared indexes in the end`, async () => {
    const failures: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      await drift(round);
      const outcomes = await Promise.allSettled(layers.map((layer) => layer.syncIndexes(options)));
      for (const [index, outcome] of outcomes.entries()) {
        if (outcome.status === 'rejected')
          failures.push(
            `round ${round}, instance ${index}: ${String(outcome.reason)} (${(outcome.reason as { codeName?: string }).codeName})`,
          );
      }
      // The end state: nothing missing, extra or different on any collection.
      const after: IndexSyncReport[] = await layers[0].syncIndexes();
      for (const report of after)
        expect(report.drift, `round ${round}: ${report.collection}`).toEqual({ missing: [], extra: [], different: [] });
    }
    expect(failures).toEqual([]);
  });

  it('continues from what a peer left when its create meets the peer’s index of that name with other options', async () => {
    const groups = unsafeDatabase(first).collection('groups');
    await groups.dropIndex('tenant_owner');
    await groups.createIndex({ tenant_id: 1, owner_id: 1, _id: -1 }, { name: 'tenant_owner', sparse: true });
    let interleaved = false;
    // The peer's half-done rebuild, interleaved right before this instance's create of the index.
    const peer: Middleware = {
      name: 'peer-rebuild',
      phase: 'transport',
      async handle(ctx, next) {
        if (!interleaved && ctx.command.kind === 'createIndex' && ctx.command.options.name === 'tenant_owner') {
          interleaved = true;
          await groups.createIndex({ tenant_id: 1, owner_id: 1, _id: -1 }, { name: 'tenant_owner', sparse: true });
        }
        return next();
      },
    };
    const layer = createDataLayer({ client: first, middlewares: [peer] });
    const report = await layer.groups.syncIndexes(options);
    expect(interleaved).toBe(true);
    expect(report.created).toEqual(['tenant_owner']);
    expect((await layers[1].groups.syncIndexes()).drift).toEqual({ missing: [], extra: [], different: [] });
  });
});
