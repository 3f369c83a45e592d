import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCache } from '@caas-db/cache';
import { ConfigError, createDataLayer } from '@caas-db/core';
import { createTestClient, snapshotDatabase } from '@caas-db/testing/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheableMethods, isCacheableMethod } from '../src/cacheable-methods.js';

const policy = { ttlMS: 60_000 };

function refusal(methods: Record<string, { ttlMS: number }>): unknown {
  try {
    createCache({ methods, memory: {} });
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('createCache accepts only methods that read through the cache', () => {
  it('refuses an uncacheable method with a ConfigError naming it and listing the cacheable ones', () => {
    const error = refusal({ 'users.findById': policy, 'messages.markAsRead': policy, 'users.findMany': policy });
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    expect(issues.map((issue) => issue.path).sort()).toEqual(['methods.messages.markAsRead', 'methods.users.findMany']);
    for (const issue of issues) {
      expect(issue.message).toContain('is not cacheable');
      for (const method of cacheableMethods) expect(issue.message).toContain(method);
    }
  });

  it('leaves the database unchanged and the data layer usable when it refuses', async () => {
    const client = createTestClient();
    const before = await snapshotDatabase(client);
    expect(refusal({ 'conversations.archive': policy })).toBeInstanceOf(ConfigError);
    expect(await snapshotDatabase(client)).toEqual(before);
  });

  it('accepts every cacheable method, findById of any collection included', () => {
    const methods = Object.fromEntries(
      ['users.findById', 'groups.findById', 'my_custom.findById', ...cacheableMethods.filter((m) => !m.startsWith('<'))].map((m) => [
        m,
        policy,
      ]),
    );
    expect(refusal(methods)).toBeUndefined();
  });

  it('lists every read core sends through the cache (each cachedRead call site of core)', () => {
    const source = fileURLToPath(new URL('../../core/src/', import.meta.url));
    const files = readdirSync(source, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
    const methods = new Set<string>();
    for (const file of files) {
      for (const match of readFileSync(join(source, file), 'utf8').matchAll(/cachedRead\(\s*'([A-Za-z]+)'/g)) methods.add(match[1] ?? '');
    }
    expect(methods.size).toBeGreaterThan(0);
    const unlisted = [...methods].filter((method) => !cacheableMethods.some((listed) => listed.endsWith(`.${method}`)));
    expect(unlisted, 'cachedRead methods missing from cacheableMethods').toEqual([]);
  });
});

describe('every listed method is served from the cache on a second read', () => {
  const client = createTestClient();
  const cache = createCache({
    methods: Object.fromEntries(cacheableMethods.map((m) => [m.replace('<collection>', 'users'), policy])),
    memory: {},
  });
  afterAll(() => cache.close());
  const data = createDataLayer({ client, plugins: [cache] });

  it('caches users.findById, users.findByExternalId, conversations.listForUser, messages.findByConversation and clients.findByTenantId', async () => {
    const acme = data.forTenant('acme');
    const [alice, bob] = await Promise.all([
      acme.users.create({ external_id: 'cm-alice', profile: { display_name: 'Alice' } }),
      acme.users.create({ external_id: 'cm-bob', profile: { display_name: 'Bob' } }),
    ]);
    const { conversation } = await acme.conversations.createDirect([alice._id, bob._id]);
    const reads: Record<string, () => Promise<unknown>> = {
      'users.findById': () => acme.users.findById(alice._id),
      'users.findByExternalId': () => acme.users.findByExternalId('cm-alice'),
      'conversations.listForUser': () => acme.conversations.listForUser(alice._id),
      'messages.findByConversation': () => acme.messages.findByConversation(conversation._id, { limit: 10 }),
      'clients.findByTenantId': () => data.clients.findByTenantId('acme'),
    };
    expect(Object.keys(reads).sort()).toEqual(cacheableMethods.map((m) => m.replace('<collection>', 'users')).sort());
    for (const [method, read] of Object.entries(reads)) {
      await read();
      const hits = cache.stats().l1.hits;
      await read();
      expect(cache.stats().l1.hits, `${method} served from the cache`).toBe(hits + 1);
    }
  });

  it('agrees with isCacheableMethod', () => {
    expect(isCacheableMethod('anything.findById')).toBe(true);
    expect(isCacheableMethod('messages.searchMessages')).toBe(false);
  });
});
