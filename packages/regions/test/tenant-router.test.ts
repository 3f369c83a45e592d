/**
 * The route cache under a race: a directory read that began before this process moved the tenant
 * must not overwrite the route the move set (it once did, and a move's own copy failed with a
 * ResidencyError).
 */
import { createDataLayer, type Middleware } from '@caas-db/core';
import { waitFor } from '@caas-db/testing';
import { createTestClient } from '@caas-db/testing/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import { MoveStore, tenantMovesDefinition } from '../src/move-store.js';
import { TenantRouter } from '../src/tenant-router.js';

const client = createTestClient();
afterAll(() => client.close());

describe('TenantRouter', () => {
  it('keeps the route a move set while an older directory read was in flight', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = false;
    let held = 0;
    // Holds the directory's reads of `clients` until released: the read is in flight meanwhile.
    const holdClients: Middleware = {
      name: 'hold-clients',
      phase: 'transport',
      async handle(ctx, next) {
        if (holding && ctx.collection?.name === 'clients') {
          held += 1;
          await gate;
        }
        return next();
      },
    };
    const directory = createDataLayer({ client, middlewares: [holdClients] });
    const tenant = `router-${Date.now()}`;
    await directory.clients.create({ tenant_id: tenant, name: 'Router', region: 'eu-west-1' });
    const router = new TenantRouter({
      directory,
      moves: directory.repository(tenantMovesDefinition, MoveStore),
      clusterOfRegion: (region) => region,
      dedicated: new Map(),
      cacheMS: 600_000,
    });

    holding = true;
    const stale = router.resolve(tenant);
    await waitFor(() => held === 1);
    const moved = { home: 'us-east-1', move: undefined };
    router.set(tenant, moved);
    release();
    await stale;
    expect(router.cached(tenant)).toEqual(moved);
    expect(await router.resolve(tenant)).toEqual(moved);

    // Without a change meanwhile, a read fills the cache as before.
    router.invalidate(tenant);
    holding = false;
    expect(await router.resolve(tenant)).toEqual({ home: 'eu-west-1', move: undefined });
  });
});
