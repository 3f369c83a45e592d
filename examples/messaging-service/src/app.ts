import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { DataStore } from './data-store.js';
import { toHttpFailure } from './error-mapping.js';
import { requestContext } from './request-context.js';
import { conversationRoutes } from './routes/conversations.js';
import { healthRoutes } from './routes/health.js';
import { messageRoutes } from './routes/messages.js';
import { searchRoutes } from './routes/search.js';
import { userRoutes } from './routes/users.js';
import type { TokenSettings } from './tokens.js';

/** A module of routes; each gets the data store. */
export type RouteModule = FastifyPluginAsync<{ store: DataStore }>;

/** The service's routes, one module per resource. */
export const serviceRoutes: readonly RouteModule[] = [healthRoutes, userRoutes, conversationRoutes, messageRoutes, searchRoutes];

/** What {@link buildApp} wires together. */
export interface AppOptions {
  store: DataStore;
  tokens: TokenSettings;
  /** The route modules to serve. @default serviceRoutes */
  routes?: readonly RouteModule[];
  /** Fastify's logger level. @default 'info' */
  logLevel?: string;
  /** Largest request body accepted, in bytes. @default 1 MiB */
  bodyLimit?: number;
}

/**
 * The HTTP service: authentication and the tenant binding in the first hook, one route module per
 * resource, and one error handler that turns every typed error into its status and stable code.
 * The data store is opened and closed by the caller (see `main.ts`), so tests and benchmarks can
 * build the app on a data store of their own.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: options.logLevel ?? 'info' },
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // While closing, requests arriving on kept-alive connections get 503; those in flight finish.
    return503OnClosing: true,
  });
  app.setErrorHandler((error, request, reply) => {
    const failure = toHttpFailure(error);
    if (failure.status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(failure.status).headers(failure.headers).send(failure.body);
  });
  // Once closing, every response asks the client to close its connection: a kept-alive connection
  // that served a request in flight would otherwise hold the close for the keep-alive timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'E_NOT_FOUND', message: `No route ${request.method} ${request.url}` } }),
  );
  await app.register(requestContext, { store: options.store, tokens: options.tokens });
  for (const routes of options.routes ?? serviceRoutes) await app.register(routes, { store: options.store });
  return app;
}
