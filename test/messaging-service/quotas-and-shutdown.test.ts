import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@caas-db/testing';
import { testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { shutdown } from '../../examples/messaging-service/src/lifecycle.js';
import { startService } from './harness.js';

const message = (index: number) => ({ content: { type: 'text', encrypted_data: Buffer.from(`m${index}`).toString('base64') } });

async function directConversation(service: Awaited<ReturnType<typeof startService>>, tenant: string) {
  const [first, second] = await Promise.all([service.token(tenant, 'u1'), service.token(tenant, 'u2')]);
  await service.call(first, 'PUT', '/v1/users/me', { display_name: 'One' });
  const other = (await service.call(second, 'PUT', '/v1/users/me', { display_name: 'Two' })).body;
  const conversation = (await service.call(first, 'POST', '/v1/conversations', { type: 'direct', user_id: other.id })).body;
  return { token: first, conversationId: conversation.id as string };
}

describe('messaging service: quotas', () => {
  it('answers 429 E_QUOTA_EXCEEDED past a tenant’s message quota, and stores exactly the quota under concurrent sends', async () => {
    const service = await startService({ tenants: ['hooli'], quotas: { messagesPerTenant: 3, writesPerSecond: undefined } });
    const { token, conversationId } = await directConversation(service, 'hooli');
    const sends = await Promise.all(
      Array.from({ length: 8 }, (_, index) => service.call(token, 'POST', `/v1/conversations/${conversationId}/messages`, message(index))),
    );
    const statuses = sends.map((send) => send.status).sort();
    expect(statuses).toEqual([201, 201, 201, 429, 429, 429, 429, 429]);
    expect(sends.find((send) => send.status === 429)?.body.error.code).toBe('E_QUOTA_EXCEEDED');
    const history = await service.call(token, 'GET', `/v1/conversations/${conversationId}/messages`);
    expect(history.body.items).toHaveLength(3);
  });
});

describe('messaging service: graceful shutdown', () => {
  it('finishes a request in flight, then closes the data layer; new connections are refused', async () => {
    const service = await startService({ tenants: ['pied-piper'] });
    const { token, conversationId } = await directConversation(service, 'pied-piper');
    let received = 0;
    // The HTTP server has parsed the request's headers: it is in flight.
    service.app.server.on('request', () => {
      received += 1;
    });
    const body = JSON.stringify(message(1));
    // Headers and half the body now, the rest after shutdown began: the request is in flight throughout.
    const inFlight = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const call = httpRequest(
        `${service.url}/v1/conversations/${conversationId}/messages`,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          let text = '';
          response.on('data', (chunk) => {
            text += chunk;
          });
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
        },
      );
      call.on('error', reject);
      call.write(body.slice(0, 10));
      waitFor(() => received === 1).then(() => {
        stopped = shutdown(service.app, service.store, 5_000);
        call.end(body.slice(10));
      }, reject);
    });
    let stopped: Promise<void> | undefined;
    const response = await inFlight;
    expect(response.status).toBe(201);
    await stopped;
    expect(service.store.data.client.closed).toBe(true);
    await expect(fetch(`${service.url}/health`)).rejects.toThrow();
  });
});

describe('messaging service: the process', () => {
  it('starts with `tsx src/main.ts`, serves /health, and on SIGTERM drains, closes the data layer and exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: fileURLToPath(new URL('../../examples/messaging-service/', import.meta.url)),
      env: {
        ...process.env,
        MONGODB_URI: testEnvironment().mongo.uri,
        MONGODB_DATABASE: testDatabaseName(),
        JWT_SECRET: 'a-test-secret-of-at-least-32-characters',
        CURSOR_SECRET: 'a-cursor-secret-of-at-least-32-characters',
        PORT: '0',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await waitFor(() => /listening on (http:\/\/\S+)/.test(output) || child.exitCode !== null, { timeoutMS: 60_000 });
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      expect(url, output).toBeDefined();
      expect((await fetch(`${url}/health`)).status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(output).toContain('SIGTERM: draining requests, then closing the data layer');
      expect(output).toContain('stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // Starting a TypeScript process on two busy cores takes seconds: a bound, not a timing assertion.
  }, 90_000);
});
