import { describe, expect, it } from 'vitest';
import { ConfigError, createDataClient, type DataClientConfig, resolveDataClientConfig } from '../src/index.js';

const valid: DataClientConfig = { uri: 'mongodb://127.0.0.1:27017', database: 'caas' };

function issuesOf(config: unknown): { path: string; message: string }[] {
  try {
    createDataClient(config as DataClientConfig);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('E_CONFIG');
    return [...(error as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}

describe('createDataClient configuration', () => {
  it('accepts a minimal configuration and applies the defaults', () => {
    const resolved = resolveDataClientConfig(valid);
    expect(resolved.retry).toEqual({ retries: 3, minDelayMS: 50, maxDelayMS: 2000, maxElapsedMS: 15_000 });
    expect(resolved.slowCommandMS).toBe(100);
    expect(resolved.driverOptions).toMatchObject({ appName: 'caas-db', monitorCommands: false });
    expect(resolved.wireMonitoring).toBe(false);
  });

  it('maps every option onto the driver', () => {
    const resolved = resolveDataClientConfig({
      ...valid,
      appName: 'messaging',
      pool: { minSize: 2, maxSize: 20, maxConnecting: 4, maxIdleTimeMS: 60_000, waitQueueTimeoutMS: 500 },
      timeouts: { connectMS: 2000, socketMS: 30_000, serverSelectionMS: 5000, heartbeatFrequencyMS: 1000 },
      auth: { mechanism: 'SCRAM-SHA-256', username: 'svc', password: 'secret', source: 'admin' },
      readPreference: { mode: 'secondaryPreferred', tags: [{ region: 'eu' }, {}], maxStalenessSeconds: 120 },
      readConcern: 'majority',
      writeConcern: { w: 'majority', journal: true, wtimeoutMS: 5000 },
      retryWrites: true,
      retryReads: false,
      compressors: ['zstd', 'zlib'],
    });
    expect(resolved.driverOptions).toMatchObject({
      appName: 'messaging',
      minPoolSize: 2,
      maxPoolSize: 20,
      maxConnecting: 4,
      maxIdleTimeMS: 60_000,
      waitQueueTimeoutMS: 500,
      connectTimeoutMS: 2000,
      socketTimeoutMS: 30_000,
      serverSelectionTimeoutMS: 5000,
      heartbeatFrequencyMS: 1000,
      authMechanism: 'SCRAM-SHA-256',
      auth: { username: 'svc', password: 'secret' },
      authSource: 'admin',
      readPreference: 'secondaryPreferred',
      readPreferenceTags: [{ region: 'eu' }, {}],
      maxStalenessSeconds: 120,
      readConcernLevel: 'majority',
      writeConcern: { w: 'majority', journal: true, wtimeoutMS: 5000 },
      retryWrites: true,
      retryReads: false,
      compressors: ['zstd', 'zlib'],
    });
  });

  it.each([
    [{ ...valid, uri: 'http://localhost' }, 'uri'],
    [{ ...valid, uri: 42 }, 'uri'],
    [{ ...valid, database: 'bad.name' }, 'database'],
    [{ ...valid, database: '' }, 'database'],
    [{ ...valid, pool: { maxSize: 0 } }, 'pool.maxSize'],
    [{ ...valid, pool: { minSize: 10, maxSize: 5 } }, 'pool.minSize'],
    [{ ...valid, pool: { maxSize: 1.5 } }, 'pool.maxSize'],
    [{ ...valid, timeouts: { connectMS: -1 } }, 'timeouts.connectMS'],
    [{ ...valid, tls: { caFile: '/nonexistent/ca.pem' } }, 'tls.caFile'],
    [{ ...valid, tls: { certificateKeyFile: '/nonexistent/client.pem' } }, 'tls.certificateKeyFile'],
    [{ ...valid, auth: { mechanism: 'SCRAM-SHA-256', username: 'svc' } }, 'auth.password'],
    [{ ...valid, auth: { mechanism: 'PLAIN-TEXT' } }, 'auth.mechanism'],
    [{ ...valid, readPreference: { mode: 'primary', tags: [{ region: 'eu' }] } }, 'readPreference.mode'],
    [{ ...valid, readPreference: { mode: 'nearest', maxStalenessSeconds: 10 } }, 'readPreference.maxStalenessSeconds'],
    [{ ...valid, readConcern: 'strong' }, 'readConcern'],
    [{ ...valid, writeConcern: { w: 'all' } }, 'writeConcern.w'],
    [{ ...valid, compressors: ['gzip'] }, 'compressors.0'],
    [{ ...valid, retry: { retries: 100 } }, 'retry.retries'],
    [{ ...valid, retry: { minDelayMS: 500, maxDelayMS: 100 } }, 'retry.minDelayMS'],
    [{ ...valid, poolSize: 10 }, ''],
    [{ ...valid, pool: { max: 10 } }, 'pool'],
  ])('rejects %j naming the field %s', (config, field) => {
    const issues = issuesOf(config);
    expect(issues.map((issue) => issue.path)).toContain(field);
  });

  it('reports every invalid field at once, in the message too', () => {
    const issues = issuesOf({ uri: 'nope', database: 'a/b', pool: { maxSize: -3 } });
    expect(issues.map((issue) => issue.path).sort()).toEqual(['database', 'pool.maxSize', 'uri']);
    expect(() => createDataClient({ uri: 'nope', database: 'x' })).toThrow(/uri: must be a mongodb/);
  });
});
