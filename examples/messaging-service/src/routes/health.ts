import type { FastifyInstance } from 'fastify';
import type { DataStore } from '../data-store.js';

/** `GET /health`: the library's health check (a `ping` through the data client), 503 when MongoDB does not answer. */
export async function healthRoutes(app: FastifyInstance, options: { store: DataStore }): Promise<void> {
  app.get('/health', { config: { public: true } }, async (_request, reply) => {
    const report = await options.store.health();
    return reply.code(report.ok ? 200 : 503).send({
      ok: report.ok,
      latency_ms: Math.round(report.latencyMS * 100) / 100,
      ...(report.error !== undefined && { error: report.error }),
    });
  });
}
