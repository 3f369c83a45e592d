import { createTestClient } from '@caas-db/testing/vitest';
import { describe, it } from 'vitest';
import { expectOnlyOwnData } from './database-isolation.js';

describe('per-file databases (file B)', () => {
  it('gives this file a database no other file writes to', async () => {
    await expectOnlyOwnData(createTestClient(), 'file-b');
  });
});
