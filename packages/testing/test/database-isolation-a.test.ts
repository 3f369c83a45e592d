import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { expectOnlyOwnData } from './database-isolation.js';

describe('per-file databases (file A)', () => {
  it('gives this file a database no other file writes to', async () => {
    await expectOnlyOwnData(createTestClient(), 'file-a');
    expect(testDatabaseName()).toMatch(/^caas_test_[0-9a-f]{8}_[0-9a-f]{6}$/);
  });
});
