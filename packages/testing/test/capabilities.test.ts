import { createTestClient, skipTest, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';

describe('capability detection', () => {
  it('reports what the fallback server can and cannot do', async (context) => {
    const environment = testEnvironment();
    if (environment.mongo.backend !== 'mongo-java-server') {
      return skipTest(context, 'only meaningful on mongo-java-server, whose capabilities are known');
    }
    const capabilities = await createTestClient().capabilities();
    expect(capabilities).toMatchObject({
      serverVersion: '7.0.0',
      maxWireVersion: 21,
      sessions: false,
      transactions: false,
      changeStreams: true,
      textSearch: false,
      ttlIndexes: false,
      partialIndexes: false,
      collation: false,
      lookup: true,
      lookupLocalFieldWithPipeline: false,
      graphLookup: false,
      unionWith: false,
      arrayFilters: true,
      explain: false,
      schemaValidation: false,
      timeSeries: false,
      serverSideJavaScript: false,
      pipelineUpdates: false,
    });
  });
});
