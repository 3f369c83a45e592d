import { type Client, type ClientRepository, createDataLayer, type Document, type ObjectId } from '@caas-db/core';
import { unsafeDatabase } from '@caas-db/core/unsafe';
import { waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createTenancy,
  TENANT_DATABASE_OWNER_COLLECTION,
  TenantDirectory,
  TenantMoveRequiredError,
  TenantSuspendedError,
  tenantDatabaseName,
} from '../src/index.js';

/**
 * A `clients` repository whose reads can be held: each read takes its snapshot of the tenant's
 * status when it starts (as MongoDB would) and returns it only once released.
 */
function heldClients() {
  let status: Client['status'] = 'active';
  let hold = false;
  const held: Array<() => void> = [];
  let reads = 0;
  const repository = {
    async findByTenantId(tenant: string) {
      reads += 1;
      const snapshot = {
        tenant_id: tenant,
        status,
        plan: 'free',
        region: 'eu-west-1',
        suspension_reason: status === 'suspended' ? 'unpaid' : undefined,
      } as unknown as Client;
      if (hold) await new Promise<void>((resolve) => held.push(resolve));
      return snapshot;
    },
  } as unknown as ClientRepository;
  return {
    repository,
    suspend: () => {
      status = 'suspended';
    },
    hold: (on: boolean) => {
      hold = on;
    },
    releaseAll: () => {
      for (const release of held.splice(0)) release();
    },
    pending: () => held.length,
    reads: () => reads,
  };
}

describe('TenantDirectory.forget invalidates lookups in flight', () => {
  it('does not store the "active" result of a lookup that started before the suspension', async () => {
    const clients = heldClients();
    const directory = new TenantDirectory(() => clients.repository, { ttlMS: 60_000 });
    clients.hold(true);
    const inFlight = directory.requireActive('acme'); // read "active", not yet answered
    await waitFor(() => clients.pending() === 1);
    clients.suspend();
    directory.forget('acme');
    clients.hold(false);
    clients.releaseAll();
    await inFlight; // it started before the suspension: its caller may see "active"
    await expect(directory.requireActive('acme')).rejects.toBeInstanceOf(TenantSuspendedError);
    expect(clients.reads()).toBe(2);
    // ...and the fresh result is cached as usual.
    await expect(directory.requireActive('acme')).rejects.toBeInstanceOf(TenantSuspendedError);
    expect(clients.reads()).toBe(2);
  });

  it('makes lookups after forget read again instead of joining the older one', async () => {
    const clients = heldClients();
    const directory = new TenantDirectory(() => clients.repository, { ttlMS: 60_000 });
    clients.hold(true);
    const before = directory.requireActive('acme');
    await waitFor(() => clients.pending() === 1);
    clients.suspend();
    directory.forget('acme');
    clients.hold(false);
    // Not joined to the held read: a read of its own, which sees the suspension.
    // A lookup stuck on the held read would hang here until the test's own timeout.
    await expect(directory.requireActive('acme')).rejects.toBeInstanceOf(TenantSuspendedError);
    clients.releaseAll();
    await before;
    await expect(directory.requireActive('acme')).rejects.toBeInstanceOf(TenantSuspendedError);
    expect(clients.reads()).toBe(2);
  });

  it('still shares one read among concurrent first lookups', async () => {
    const clients = heldClients();
    const directory = new TenantDirectory(() => clients.repository);
    await Promise.all(Array.from({ length: 20 }, () => directory.requireActive('acme')));
    expect(clients.reads()).toBe(1);
  });
});

describe('a tenant whose plan moves it to another database', () => {
  const client = createTestClient();
  const prefix = `m${testDatabaseName().slice(-6)}`;
  const tenancy = createTenancy({
    strategy: { databasePerTenantPlans: ['enterprise'], databasePrefix: prefix },
    directory: { ttlMS: 60_000 },
  });
  const data = createDataLayer({ client, plugins: [tenancy] });
  const shared = client.databaseName;

  afterAll(async () => {
    for (const name of await data.admin.listDatabases()) if (name.startsWith(`${prefix}_`)) await data.admin.dropDatabase(name);
  });

  const changePlan = async (tenant: string, plan: Client['plan']) => {
    await data.clients.changePlan(tenant, plan);
    tenancy.directory.forget(tenant);
  };

  it('is refused, with a typed error, while its documents are still in the shared database; nothing is claimed', async () => {
    await data.clients.create({ tenant_id: 'upgrader', name: 'Up', region: 'eu-west-1', plan: 'pro' });
    const repositories = data.forTenant('upgrader');
    const user = await repositories.users.create({ external_id: 'kept', profile: { display_name: 'Kept' } });
    await changePlan('upgrader', 'enterprise');
    const own = tenantDatabaseName('upgrader', prefix);
    for (const call of [
      () => repositories.users.findById(user._id),
      () => repositories.users.findByExternalId('kept'),
      () => repositories.users.count(),
      () => repositories.users.create({ external_id: 'new', profile: { display_name: 'New' } }),
    ]) {
      const error = await call().then(
        (value) => value,
        (caught: unknown) => caught,
      );
      expect(error, 'refused, not read back as missing').toBeInstanceOf(Error);
      expect(error).toBeInstanceOf(TenantMoveRequiredError);
      expect(error).toMatchObject({ code: 'E_TENANT_MOVE_REQUIRED', tenant: 'upgrader', placedIn: shared, chosen: own });
    }
    expect(await unsafeDatabase(client, own).collection(TENANT_DATABASE_OWNER_COLLECTION).countDocuments()).toBe(0);
    expect(await unsafeDatabase(client, own).collection('users').countDocuments()).toBe(0);
  });

  it('is let in once its documents are moved to its database', async () => {
    const own = tenantDatabaseName('upgrader', prefix);
    const [user] = await unsafeDatabase(client).collection('users').find({ tenant_id: 'upgrader' }).toArray();
    // The move, by hand: copy every tenant-owned collection, then remove the shared copies.
    for (const name of data.tenantOwnedCollections()) {
      const documents = await unsafeDatabase(client).collection(name).find({ tenant_id: 'upgrader' }).toArray();
      if (documents.length === 0) continue;
      await unsafeDatabase(client, own).collection(name).insertMany(documents);
      await unsafeDatabase(client).collection(name).deleteMany({ tenant_id: 'upgrader' });
    }
    const moved = await data.forTenant('upgrader').users.findById(user?._id as ObjectId);
    expect(moved?.external_id).toBe('kept');
    expect(await unsafeDatabase(client, own).collection(TENANT_DATABASE_OWNER_COLLECTION).find({}).toArray()).toEqual([
      expect.objectContaining({ _id: 'owner', tenant_id: 'upgrader' }),
    ]);
  });

  it('is refused when moved back to a shared plan while its documents are in its own database', async () => {
    await data.clients.create({ tenant_id: 'downgrader', name: 'Down', region: 'eu-west-1', plan: 'enterprise' });
    const repositories = data.forTenant('downgrader');
    const user = await repositories.users.create({ external_id: 'kept', profile: { display_name: 'Kept' } });
    expect(await repositories.users.findById(user._id)).not.toBeNull();
    await changePlan('downgrader', 'pro');
    const error = await repositories.users.findById(user._id).then(
      (value) => value,
      (caught: unknown) => caught,
    );
    expect(error, 'refused, not read back as missing').toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(TenantMoveRequiredError);
    expect(error).toMatchObject({ tenant: 'downgrader', placedIn: tenantDatabaseName('downgrader', prefix), chosen: shared });
    expect(
      await unsafeDatabase(client)
        .collection('users')
        .countDocuments({ tenant_id: 'downgrader' } as Document),
    ).toBe(0);
  });

  it('places new tenants where their plan says, with no move', async () => {
    await data.clients.create({ tenant_id: 'fresh-big', name: 'Big', region: 'eu-west-1', plan: 'enterprise' });
    await data.clients.create({ tenant_id: 'fresh-small', name: 'Small', region: 'eu-west-1', plan: 'pro' });
    const big = await data.forTenant('fresh-big').users.create({ external_id: 'b', profile: { display_name: 'B' } });
    const small = await data.forTenant('fresh-small').users.create({ external_id: 's', profile: { display_name: 'S' } });
    expect(await data.forTenant('fresh-big').users.findById(big._id)).not.toBeNull();
    expect(await data.forTenant('fresh-small').users.findById(small._id)).not.toBeNull();
    expect(await unsafeDatabase(client, tenantDatabaseName('fresh-big', prefix)).collection('users').countDocuments()).toBe(1);
    expect(
      await unsafeDatabase(client)
        .collection('users')
        .countDocuments({ tenant_id: 'fresh-small' } as Document),
    ).toBe(1);
  });
});
