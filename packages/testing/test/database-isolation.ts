import type { DataClient } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { testDatabaseName } from '@caas-db/testing/vitest';
import { expect } from 'vitest';

/**
 * Both isolation files write to the same collection name at the same time (vitest runs them in
 * parallel workers), each many times, and each must read back only what it wrote.
 */
export async function expectOnlyOwnData(client: DataClient, owner: string): Promise<void> {
  expect(testDatabaseName()).toBe(client.databaseName);
  for (let round = 0; round < 20; round += 1) {
    await unsafeDatabase(client).collection('shared_name').insertOne({ owner, round });
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const owners = await unsafeDatabase(client).collection('shared_name').distinct('owner');
  expect(owners).toEqual([owner]);
  const count = await unsafeDatabase(client).collection('shared_name').countDocuments();
  expect(count).toBe(20);
}
