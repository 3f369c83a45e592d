import { startMongo } from '@caas-db/testing';
import type { DataStore } from './data-store.js';
import { issueToken, type TokenSettings } from './tokens.js';

/** An embedded MongoDB for running the service with no setup: in memory, gone when the process stops. */
export interface DevelopmentDatabase {
  uri: string;
  description: string;
  stop(): Promise<void>;
}

/** Starts the embedded test MongoDB of `@caas-db/testing` (used when no `MONGODB_URI` is set). */
export async function startDevelopmentDatabase(): Promise<DevelopmentDatabase> {
  const mongo = await startMongo();
  return { uri: mongo.uri, description: mongo.description, stop: () => mongo.stop() };
}

/** The demo tenants and users whose tokens development mode prints. */
const demo = [
  { tenant: 'acme', name: 'Acme Inc.', subjects: ['alice', 'bob'] },
  { tenant: 'globex', name: 'Globex Corp.', subjects: ['carol'] },
] as const;

/**
 * Registers the demo tenants as clients of the platform (in production the platform's provisioning
 * does this) and returns a token per demo user, valid for a day, for the README's curl examples.
 */
export async function provisionDevelopmentTenants(store: DataStore, tokens: TokenSettings): Promise<Record<string, string>> {
  const issued: Record<string, string> = {};
  for (const { tenant, name, subjects } of demo) {
    if (!(await store.data.clients.findByTenantId(tenant)))
      await store.data.clients.create({ tenant_id: tenant, name, region: 'eu-west-1' });
    for (const subject of subjects) issued[`${tenant}/${subject}`] = await issueToken({ tenant, subject }, tokens, '24h');
  }
  return issued;
}
