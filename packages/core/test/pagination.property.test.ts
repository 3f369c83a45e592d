import { createTestClient } from '@caas-db/testing/vitest';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createDataLayer,
  ObjectId,
  objectIdSchema,
  type PageSort,
  Repository,
  type RepositoryDefinition,
  tenantIdSchema,
} from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const itemSchema = z.strictObject({ tenant_id: tenantIdSchema, list_id: objectIdSchema, rank: z.number().int() });
const itemsDefinition: RepositoryDefinition<typeof itemSchema> = {
  collection: 'items',
  schema: itemSchema,
  tenantOwned: true,
  schemaVersion: 1,
  sortable: ['rank'],
  indexes: [
    { name: 'tenant_list_rank', key: { tenant_id: 1, list_id: 1, rank: 1, _id: 1 }, purpose: 'pages by rank' },
    { name: 'tenant_list_id', key: { tenant_id: 1, list_id: 1, _id: -1 }, purpose: 'pages by id' },
  ],
  queries: [],
};
class ItemRepository extends Repository<typeof itemSchema> {}

const client = createTestClient();
const data = createDataLayer({ client, cursorSecret: 'property-test-secret-of-32-characters' });
const items = data.repository(itemsDefinition, ItemRepository, 'acme');

beforeAll(async () => {
  await items.syncIndexes();
});

type Step = { kind: 'insert'; ranks: number[] } | { kind: 'read'; limit: number } | { kind: 'both'; ranks: number[]; limit: number };

const rankArbitrary = fc.integer({ min: 0, max: 5 }); // few distinct ranks: many ties for the _id tiebreak
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), ranks: fc.array(rankArbitrary, { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('read' as const), limit: fc.integer({ min: 1, max: 5 }) }),
  fc.record({
    kind: fc.constant('both' as const),
    ranks: fc.array(rankArbitrary, { minLength: 1, maxLength: 4 }),
    limit: fc.integer({ min: 1, max: 5 }),
  }),
);
const sortArbitrary = fc.constantFrom<PageSort<'rank'>>(
  { field: '_id', direction: 'desc' },
  { field: '_id', direction: 'asc' },
  { field: 'rank', direction: 'asc' },
  { field: 'rank', direction: 'desc' },
);

describe('keyset pagination under concurrent inserts (property)', () => {
  it('sees every document present at the start exactly once, and no document twice', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rankArbitrary, { maxLength: 25 }),
        fc.array(stepArbitrary, { maxLength: 25 }),
        sortArbitrary,
        async (initialRanks, steps, sort) => {
          const listId = new ObjectId();
          const insert = async (ranks: number[]) => {
            if (ranks.length > 0) await items.createMany(ranks.map((rank) => ({ list_id: listId, rank })));
          };
          await insert(initialRanks);
          // Read around the pagination under test: straight from the database.
          const present = new Set(
            (await unsafeDatabase(client).collection('items').find({ list_id: listId }).toArray()).map((row) => row._id.toHexString()),
          );

          const seen: string[] = [];
          let cursor: string | null | undefined;
          let finished = false;
          const read = async (limit: number) => {
            if (finished) return;
            const page = await items.findMany({ list_id: listId }, { sort, limit, cursor: cursor ?? null });
            seen.push(...page.items.map((item) => item._id.toHexString()));
            cursor = page.nextCursor;
            finished = page.nextCursor === null;
          };
          for (const step of steps) {
            if (step.kind === 'insert') await insert(step.ranks);
            else if (step.kind === 'read') await read(step.limit);
            else await Promise.all([insert(step.ranks), read(step.limit)]);
          }
          while (!finished) await read(7);

          expect(new Set(seen).size, 'a document appeared twice').toBe(seen.length);
          for (const id of present) expect(seen, `document ${id} present at the start was skipped`).toContain(id);
        },
      ),
      { numRuns: 60, verbose: 1 },
    );
  });
});
