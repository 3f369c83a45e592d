/**
 * Load test of examples/messaging-service over HTTP: 100 concurrent clients across 10 tenants,
 * half sending messages, half paging history, for 30 s (SERVICE_BENCH_SECONDS), against the service
 * as it is and against a variant whose send and history routes use the raw driver; side by side.
 *
 * The service runs in a child process (one per variant, on a database of its own), autocannon in
 * this one, so the load generator and the server do not share a thread.
 * Run: pnpm bench:service  (MONGODB_URI to use a real server instead of the embedded one;
 * SERVICE_BENCH_ROUNDS=2 runs each variant twice, in the order A B B A)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { z } from 'zod';
import { buildApp, type RouteModule, serviceRoutes } from '../examples/messaging-service/src/app.js';
import { openDataStore } from '../examples/messaging-service/src/data-store.js';
import { idSchema, parseRequest } from '../examples/messaging-service/src/request-input.js';
import { messageRoutes } from '../examples/messaging-service/src/routes/messages.js';
import { issueToken } from '../examples/messaging-service/src/tokens.js';
import { messageView } from '../examples/messaging-service/src/views.js';
import { type Message, NotFoundError, ObjectId } from '../packages/core/src/index.js';
import { unsafeDatabase } from '../packages/core/src/unsafe.js';
import { startMongo } from '../packages/testing/src/index.js';

const SECONDS = Number(process.env.SERVICE_BENCH_SECONDS ?? 30);
const TENANTS = 10;
const CONNECTIONS = Number(process.env.SERVICE_BENCH_CONNECTIONS ?? 100);
const USERS_PER_TENANT = 10;
const SEED_MESSAGES = 20;
const ROUNDS = Number(process.env.SERVICE_BENCH_ROUNDS ?? 1);
const tokens = {
  secret: process.env.JWT_SECRET ?? randomBytes(32).toString('base64url'),
  issuer: 'caas-auth',
  audience: 'messaging-service',
};
const cursorSecret = 'service-bench-cursor-secret-0123456789abcdef';
type Variant = 'caas-db' | 'raw driver';

// ---------------------------------------------------------------------------------------------
// The raw-driver variant of the send and history routes: the same authentication, authorization
// and validation, then the driver directly (no pipeline, no cache, no batching, no typed errors).

const sendSchema = z.strictObject({
  content: z.strictObject({ type: z.enum(['text', 'file', 'image', 'video', 'audio']), encrypted_data: z.string().min(1).max(262_144) }),
});

const rawMessageRoutes: RouteModule = async (app, options) => {
  const db = unsafeDatabase(options.store.data.client);
  const users = db.collection('users');
  const conversations = db.collection('conversations');
  const messages = db.collection('messages');
  const me = async (tenant: string, subject: string) => {
    const user = await users.findOne({ tenant_id: tenant, external_id: subject, deleted_at: null });
    if (!user) throw new NotFoundError('users', subject);
    return user;
  };
  const member = async (tenant: string, conversationId: string, userId: ObjectId) => {
    const found = await conversations.findOne(
      { _id: ObjectId.createFromHexString(conversationId), tenant_id: tenant, 'participants.user_id': userId, deleted_at: null },
      { projection: { _id: 1 } },
    );
    if (!found) throw new NotFoundError('conversations', conversationId);
  };
  app.post('/v1/conversations/:conversationId/messages', async (request, reply) => {
    const { conversationId } = parseRequest(z.strictObject({ conversationId: idSchema }), request.params, 'params');
    const body = parseRequest(sendSchema, request.body, 'body');
    const tenant = request.principal.tenant;
    const user = await me(tenant, request.principal.subject);
    await member(tenant, conversationId, user._id);
    const now = new Date();
    const document = {
      _id: new ObjectId(),
      tenant_id: tenant,
      conversation_id: ObjectId.createFromHexString(conversationId),
      sender_id: user._id,
      content: body.content,
      reactions: [],
      read_by: [],
      status: 'sent',
      deleted_at: null,
      schema_version: 1,
      created_at: now,
      updated_at: now,
    };
    await messages.insertOne(document);
    await conversations.updateOne(
      { _id: document.conversation_id, tenant_id: tenant },
      {
        $set: {
          last_message: { message_id: document._id, content_preview: '', sender_id: user._id, sent_at: now },
          updated_at: now,
        },
      },
    );
    // The same response body as the service's own route.
    return reply.code(201).send(messageView(document as unknown as Message));
  });
  app.get('/v1/conversations/:conversationId/messages', async (request) => {
    const { conversationId } = parseRequest(z.strictObject({ conversationId: idSchema }), request.params, 'params');
    const query = parseRequest(
      z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(50), before: idSchema.optional() }),
      request.query,
      'query',
    );
    const tenant = request.principal.tenant;
    const user = await me(tenant, request.principal.subject);
    await member(tenant, conversationId, user._id);
    const filter: Record<string, unknown> = {
      tenant_id: tenant,
      conversation_id: ObjectId.createFromHexString(conversationId),
      deleted_at: null,
    };
    if (query.before) filter._id = { $lt: ObjectId.createFromHexString(query.before) };
    const items = await messages
      .find(filter)
      .sort({ _id: -1 })
      .limit(query.limit + 1)
      .toArray();
    const page = items.slice(0, query.limit);
    return {
      items: page.map((message) => messageView(message as unknown as Message)),
      next_cursor: items.length > query.limit ? page.at(-1)?._id.toHexString() : null,
    };
  });
};

// ---------------------------------------------------------------------------------------------
// Child process: serve one variant.

async function serve(variant: Variant, uri: string, database: string) {
  const store = await openDataStore({
    mongodbUri: uri,
    database,
    redisUrl: undefined,
    cursorSecret,
    quotas: { messagesPerTenant: undefined, writesPerSecond: undefined },
  });
  for (let index = 0; index < TENANTS; index += 1) {
    await store.data.clients.create({ tenant_id: `tenant-${index}`, name: `Tenant ${index}`, region: 'eu-west-1' });
  }
  const routes: RouteModule[] =
    variant === 'caas-db' ? [...serviceRoutes] : [...serviceRoutes.filter((routes) => routes !== messageRoutes), rawMessageRoutes];
  const app = await buildApp({ store, tokens, logLevel: 'warn', routes });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  process.stdout.write(`READY ${typeof address === 'object' && address ? address.port : 0}\n`);
  // The parent asks for the process's CPU time before and after the load: CPU per request is far
  // less moved by other processes on the machine than requests per second are.
  process.on('SIGUSR2', () => {
    const { user, system } = process.cpuUsage();
    process.stdout.write(`CPU ${user + system}\n`);
  });
  process.once('SIGTERM', async () => {
    await app.close();
    await store.data.admin.dropDatabase();
    await store.close(5_000);
    process.exit(0);
  });
}

// ---------------------------------------------------------------------------------------------
// Parent process: start a variant, seed it over HTTP, load it, stop it.

interface Fixture {
  token: string;
  conversationId: string;
}

async function call(url: string, token: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json() as Promise<{ id: string }>;
}

/** Per tenant, users in pairs with a direct conversation each; a fixture per connection (its tenant's token and conversation). */
async function seed(url: string): Promise<Fixture[]> {
  const perTenant = await Promise.all(
    Array.from({ length: TENANTS }, async (_, tenant) => {
      const id = `tenant-${tenant}`;
      const users: { token: string; id: string }[] = [];
      for (let index = 0; index < USERS_PER_TENANT; index += 1) {
        const token = await issueToken({ tenant: id, subject: `user-${index}` }, tokens, '2h');
        users.push({ token, id: (await call(url, token, 'PUT', '/v1/users/me', { display_name: `User ${index}` })).id });
      }
      const pairs: Fixture[] = [];
      for (let index = 0; index < USERS_PER_TENANT; index += 2) {
        const [first, second] = [users[index], users[index + 1]] as [(typeof users)[number], (typeof users)[number]];
        const conversation = await call(url, first.token, 'POST', '/v1/conversations', { type: 'direct', user_id: second.id });
        // Some history to page through from the first request on.
        for (let message = 0; message < SEED_MESSAGES; message += 1) {
          await call(url, first.token, 'POST', `/v1/conversations/${conversation.id}/messages`, {
            content: { type: 'text', encrypted_data: Buffer.from(`seed ${message}`).toString('base64') },
          });
        }
        pairs.push({ token: first.token, conversationId: conversation.id }, { token: second.token, conversationId: conversation.id });
      }
      return pairs;
    }),
  );
  return perTenant.flat();
}

/** A running service: its URL, and its CPU time in µs on demand. */
interface ServiceProcess {
  child: ChildProcess;
  url: string;
  cpuMicros(): Promise<number>;
}

function startVariant(variant: Variant, uri: string): Promise<ServiceProcess> {
  // SERVICE_BENCH_PROFILE=<dir> writes a CPU profile of each service process there.
  const profile = process.env.SERVICE_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SERVICE_BENCH_PROFILE}`] : [];
  const child = spawn(
    process.execPath,
    [...profile, '--import', 'tsx', fileURLToPath(import.meta.url), '--serve', variant, uri, `bench_service_${Date.now()}`],
    { env: { ...process.env, JWT_SECRET: tokens.secret }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const cpuWaiters: Array<(micros: number) => void> = [];
  const cpuMicros = () =>
    new Promise<number>((resolve) => {
      cpuWaiters.push(resolve);
      child.kill('SIGUSR2');
    });
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const ready = /^READY (\d+)$/.exec(line);
        if (ready) resolve({ child, url: `http://127.0.0.1:${ready[1]}`, cpuMicros });
        const cpu = /^CPU (\d+)$/.exec(line);
        if (cpu) cpuWaiters.shift()?.(Number(cpu[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`the ${variant} service exited with ${code} before it was ready`)));
  });
}

interface RouteResult {
  route: string;
  requests: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  /** What the errors were: socket errors, requests past the 60 s timeout, responses by non-2xx status. */
  errorKinds: string;
}

function load(url: string, fixtures: Fixture[], route: 'send' | 'history', connections: number): Promise<RouteResult> {
  let next = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        duration: SECONDS,
        // On a shared 2-core machine queueing reaches seconds; a slow answer is reported in p99, not as a failure.
        timeout: 60,
        requests: [
          {
            // Each connection keeps one client's identity: its tenant's token and conversation.
            setupRequest: (request, context: { fixture?: Fixture | undefined }) => {
              context.fixture ??= fixtures[next++ % fixtures.length];
              const fixture = context.fixture as Fixture;
              const path = `/v1/conversations/${fixture.conversationId}/messages`;
              const headers = { authorization: `Bearer ${fixture.token}`, 'content-type': 'application/json' };
              return route === 'send'
                ? {
                    ...request,
                    method: 'POST',
                    path,
                    headers,
                    body: JSON.stringify({ content: { type: 'text', encrypted_data: 'bG9hZCB0ZXN0' } }),
                  }
                : { ...request, method: 'GET', path: `${path}?limit=50`, headers };
            },
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        resolve({
          route,
          requests: result.requests.total,
          requestsPerSecond: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          // autocannon counts timeouts among `errors`.
          errors: result.errors + result.non2xx,
          errorKinds: [
            result.errors - result.timeouts > 0 ? `${result.errors - result.timeouts} socket errors` : '',
            result.timeouts > 0 ? `${result.timeouts} timeouts` : '',
            ...Object.entries(result.statusCodeStats ?? {})
              .filter(([status]) => !status.startsWith('2'))
              .map(([status, stats]) => `${stats.count} × ${status}`),
          ]
            .filter(Boolean)
            .join(', '),
        });
      },
    );
  });
}

async function run() {
  const mongo = await startMongo();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), Node ${process.version}; server: ${mongo.description}`);
  out(`${CONNECTIONS} connections across ${TENANTS} tenants (half sending, half reading history), ${SECONDS} s per variant`);
  // Other processes on the machine move these figures: the load average says how busy it was.
  const loadAverage = () =>
    loadavg()
      .map((value) => value.toFixed(1))
      .join(' ');
  out(`load average at start: ${loadAverage()}`);
  const results: Record<string, RouteResult[]> = {};
  const cpuPerRequest: Record<string, number> = {};
  // Rounds alternate the order (A B, then B A, ...) so a drift in the machine's load favours neither.
  const runs = Array.from({ length: ROUNDS }, (_, round) =>
    (round % 2 === 0 ? (['caas-db', 'raw driver'] as const) : (['raw driver', 'caas-db'] as const)).map((variant) => ({ variant, round })),
  ).flat();
  try {
    for (const { variant, round } of runs) {
      const { child, url, cpuMicros } = await startVariant(variant, mongo.uri);
      try {
        const fixtures = await seed(url);
        const senders = fixtures.filter((_, index) => index % 2 === 0);
        const readers = fixtures.filter((_, index) => index % 2 === 1);
        const key = ROUNDS > 1 ? `${variant} (round ${round + 1})` : variant;
        const cpuBefore = await cpuMicros();
        results[key] = await Promise.all([load(url, senders, 'send', CONNECTIONS / 2), load(url, readers, 'history', CONNECTIONS / 2)]);
        const served = results[key].reduce((sum, route) => sum + route.requests, 0);
        cpuPerRequest[key] = ((await cpuMicros()) - cpuBefore) / served;
        out(`${key}: done, load average ${loadAverage()}`);
      } finally {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
    }
  } finally {
    await mongo.stop();
  }
  out('');
  out('| variant | route | requests | req/s | p50 ms | p99 ms | errors | service CPU µs per request |');
  out('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const [variant, routes] of Object.entries(results)) {
    for (const route of routes) {
      out(
        `| ${variant} | ${route.route} | ${route.requests} | ${route.requestsPerSecond.toFixed(0)} | ${route.p50} | ${route.p99} | ${route.errors} | |`,
      );
    }
    const total = routes.reduce((sum, route) => sum + route.requestsPerSecond, 0);
    out(
      `| ${variant} | all | ${routes.reduce((sum, route) => sum + route.requests, 0)} | ${total.toFixed(0)} | | | ${routes.reduce((sum, route) => sum + route.errors, 0)} | ${(cpuPerRequest[variant] ?? 0).toFixed(0)} |`,
    );
  }
  const errors = Object.values(results)
    .flat()
    .reduce((sum, route) => sum + route.errors, 0);
  if (errors > 0) {
    for (const [variant, routes] of Object.entries(results)) {
      for (const route of routes) if (route.errors > 0) out(`${variant} ${route.route}: ${route.errorKinds}`);
    }
    out(`${errors} requests failed`);
    process.exitCode = 1;
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] as Variant, process.argv[4] as string, process.argv[5] as string);
else await run();
