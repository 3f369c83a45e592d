import { createHmac, randomBytes } from 'node:crypto';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { afterAll } from 'vitest';
import { buildApp } from '../../examples/messaging-service/src/app.js';
import { type DataStore, type DataStoreConfig, openDataStore } from '../../examples/messaging-service/src/data-store.js';
import { shutdown } from '../../examples/messaging-service/src/lifecycle.js';
import { issueToken, type TokenSettings } from '../../examples/messaging-service/src/tokens.js';

/** The token settings of every service a test file starts. */
export const tokenSettings: TokenSettings = {
  secret: randomBytes(32).toString('base64url'),
  issuer: 'caas-auth',
  audience: 'messaging-service',
};

/** A service listening on a real socket, on this file's database. */
export interface RunningService {
  url: string;
  app: Awaited<ReturnType<typeof buildApp>>;
  store: DataStore;
  /** A bearer token for `subject` of `tenant`. */
  token(tenant: string, subject: string): Promise<string>;
  /** Calls the service over HTTP, as a client would. */
  call(token: string | undefined, method: string, path: string, body?: unknown): Promise<ApiResponse>;
}

/** What a call returned. */
export interface ApiResponse {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field.
  body: any;
}

/** Calls `url` with an optional bearer token and a JSON body (a string is sent as it is). */
export async function request(url: string, token: string | undefined, method: string, body?: unknown): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

/**
 * Opens a data store and the app on this file's database and a free port, provisions `tenants` as
 * active clients, and stops both (dropping the database) after the file's tests.
 */
export async function startService(options: { tenants: string[]; quotas?: DataStoreConfig['quotas'] }): Promise<RunningService> {
  const environment = testEnvironment();
  const store = await openDataStore({
    mongodbUri: environment.mongo.uri,
    database: testDatabaseName(),
    redisUrl: environment.redis.url,
    cursorSecret: 'messaging-service-test-cursor-secret-0123456789',
    quotas: options.quotas ?? { messagesPerTenant: undefined, writesPerSecond: undefined },
  });
  for (const tenant of options.tenants) {
    if (!(await store.data.clients.findByTenantId(tenant)))
      await store.data.clients.create({ tenant_id: tenant, name: tenant, region: 'eu-west-1' });
  }
  const app = await buildApp({ store, tokens: tokenSettings, logLevel: 'silent' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the service is not listening on a TCP port');
  const url = `http://127.0.0.1:${address.port}`;
  afterAll(async () => {
    if (!store.data.client.closed) await store.data.admin.dropDatabase().catch(() => undefined);
    await shutdown(app, store, 5_000);
  });
  return {
    url,
    app,
    store,
    token: (tenant, subject) => issueToken({ tenant, subject }, tokenSettings),
    call: (token, method, path, body) => request(`${url}${path}`, token, method, body),
  };
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Signs a JWT by hand (HS256 over `header.payload`), so tests can forge every kind of bad token
 * without the service's own signing code.
 */
export function signJwt(
  payload: Record<string, unknown>,
  key: string,
  header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' },
): string {
  const unsigned = `${base64url(header)}.${base64url(payload)}`;
  return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`;
}
