import { ConfigError, createDataLayer, type Middleware } from '@caas-db/core';
import { waitFor } from '@caas-db/testing';
import { createTestClient } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import { TenantBusyError, tenantConcurrencyCap } from '../src/index.js';

/** A transport layer that holds every command until released, counting each tenant's commands in flight. */
function gate() {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const inFlight = new Map<string, number>();
  const peak = new Map<string, number>();
  let sent = 0;
  const layer: Middleware = {
    name: 'gate',
    phase: 'transport',
    async handle(ctx, next) {
      const tenant = ctx.tenant ?? '';
      const now = (inFlight.get(tenant) ?? 0) + 1;
      inFlight.set(tenant, now);
      peak.set(tenant, Math.max(peak.get(tenant) ?? 0, now));
      sent += 1;
      try {
        await opened;
        return await next();
      } finally {
        inFlight.set(tenant, (inFlight.get(tenant) ?? 1) - 1);
      }
    },
  };
  return {
    layer,
    peak,
    inFlight: (tenant: string) => inFlight.get(tenant) ?? 0,
    sent: () => sent,
    release: () => open(),
  };
}

describe('tenantConcurrencyCap', () => {
  it('queues a tenant over its cap (or its override) while other tenants go straight through', async () => {
    const held = gate();
    const cap = tenantConcurrencyCap({ perTenant: 2, overrides: { big: 3 } });
    const data = createDataLayer({ client: createTestClient(), middlewares: [cap, held.layer] });
    const flood = Array.from({ length: 12 }, () => data.forTenant('flood').users.count());
    const big = Array.from({ length: 5 }, () => data.forTenant('big').users.count());
    await waitFor(() => held.inFlight('flood') === 2 && held.inFlight('big') === 3);
    expect(cap.load('flood')).toEqual({ running: 2, waiting: 10 });
    // Another tenant is not behind the flood: its command reaches the transport at once.
    const quiet = data.forTenant('quiet').users.count();
    await waitFor(() => held.inFlight('quiet') === 1);
    held.release();
    await Promise.all([...flood, ...big, quiet]);
    expect(held.peak.get('flood')).toBe(2);
    expect(held.peak.get('big')).toBe(3);
    expect(cap.load('flood')).toEqual({ running: 0, waiting: 0 });
  });

  it('fails fast, or past maxQueued, with TenantBusyError before anything is sent', async () => {
    const held = gate();
    const data = createDataLayer({
      client: createTestClient(),
      middlewares: [tenantConcurrencyCap({ perTenant: 1, mode: 'fail-fast' }), held.layer],
    });
    const first = data.forTenant('acme').users.count();
    await waitFor(() => held.inFlight('acme') === 1);
    const sentBefore = held.sent();
    const refused = data.forTenant('acme').users.count();
    await expect(refused).rejects.toBeInstanceOf(TenantBusyError);
    await expect(refused).rejects.toMatchObject({ code: 'E_TENANT_BUSY', tenant: 'acme', limit: 1 });
    expect(held.sent()).toBe(sentBefore);
    held.release();
    await first;

    const queued = gate();
    const bounded = createDataLayer({
      client: createTestClient(),
      middlewares: [tenantConcurrencyCap({ perTenant: 1, maxQueued: 1 }), queued.layer],
    });
    const running = bounded.forTenant('acme').users.count();
    const waiting = bounded.forTenant('acme').users.count();
    await waitFor(() => queued.inFlight('acme') === 1);
    await expect(bounded.forTenant('acme').users.count()).rejects.toMatchObject({ code: 'E_TENANT_BUSY' });
    queued.release();
    await Promise.all([running, waiting]);
  });

  it('releases the slot when a command fails, and validates its options', async () => {
    const failing: Middleware = {
      name: 'fail',
      phase: 'transport',
      handle: () => Promise.reject(new Error('refused by test')),
    };
    const cap = tenantConcurrencyCap({ perTenant: 1 });
    const data = createDataLayer({ client: createTestClient(), middlewares: [cap, failing] });
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => data.forTenant('acme').users.count()));
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
    expect(cap.load('acme')).toEqual({ running: 0, waiting: 0 });
    expect(() => tenantConcurrencyCap({ perTenant: 0 })).toThrow(ConfigError);
    expect(() => tenantConcurrencyCap({ perTenant: 2, mode: 'drop' as never })).toThrow(ConfigError);
    expect(() => tenantConcurrencyCap({ perTenant: 2, overrides: { acme: -1 } })).toThrow(ConfigError);
  });
});
