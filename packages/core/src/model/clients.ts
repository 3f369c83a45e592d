import { z } from 'zod';
import { cacheTags } from '../cache/read-cache.js';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { freeFormSchema, tenantIdSchema, text } from '../schema/primitives.js';

/** Lifecycle states of a SaaS client (tenant). */
export const clientStatuses = ['active', 'suspended'] as const;
/** Commercial plans. */
export const plans = ['free', 'starter', 'pro', 'enterprise'] as const;

/** The fields of a `clients` document: one SaaS customer, i.e. one tenant. A platform collection. */
export const clientSchema = z.strictObject({
  /** The tenant id this client owns. Unique. */
  tenant_id: tenantIdSchema,
  name: text(256, 1),
  status: z.enum(clientStatuses).default('active'),
  plan: z.enum(plans).default('free'),
  /** Where the tenant's data must live (data residency). */
  region: z.string().regex(/^[a-z]{2}-[a-z]+-\d$/, 'must be a region such as eu-west-1'),
  contact_email: z.email().max(320).optional(),
  suspension_reason: text(1024).optional(),
  settings: freeFormSchema.optional(),
});

/** A stored client. */
export type Client = StoredDocument<typeof clientSchema>;

/** The definition of `clients` (not tenant-owned: the tenant registry itself). */
export const clientsDefinition: RepositoryDefinition<typeof clientSchema> = {
  collection: 'clients',
  schema: clientSchema,
  tenantOwned: false,
  schemaVersion: 1,
  versioned: true,
  indexes: [
    { name: 'tenant_id', key: { tenant_id: 1 }, unique: true, purpose: 'one client per tenant id (findByTenantId, tenant status checks)' },
    { name: 'status', key: { status: 1, _id: -1 }, purpose: 'clients by status (listByStatus)' },
  ],
  queries: [
    { name: 'findByTenantId / suspend / activate / changePlan', equality: ['tenant_id'] },
    { name: 'listByStatus', equality: ['status'], sort: [['_id', -1]] },
  ],
};

/** The SaaS clients (tenants) of the platform. */
export class ClientRepository extends Repository<typeof clientSchema> {
  /** The client that owns `tenantId`, or null. */
  async findByTenantId(tenantId: string): Promise<Client | null> {
    const tenant = this.parse(tenantIdSchema, tenantId, 'tenantId');
    const tags = [cacheTags.list(undefined, this.name, 'tenant_id', tenant), cacheTags.lists(undefined, this.name)];
    return this.cachedRead('findByTenantId', tenant, tags, () => this.findOne({ tenant_id: tenant }));
  }

  /** Suspends a tenant (its data stays; tenancy refuses its requests). */
  async suspend(tenantId: string, reason: string): Promise<Client> {
    return this.#set('suspend', tenantId, { status: 'suspended', suspension_reason: this.parse(text(1024, 1), reason, 'reason') });
  }

  /** Reactivates a suspended tenant. */
  async activate(tenantId: string): Promise<Client> {
    return this.#set('activate', tenantId, { status: 'active' }, { suspension_reason: '' });
  }

  /** Moves a tenant to another plan. */
  async changePlan(tenantId: string, plan: (typeof plans)[number]): Promise<Client> {
    return this.#set('changePlan', tenantId, { plan: this.parse(z.enum(plans), plan, 'plan') });
  }

  async #set(operation: string, tenantId: string, set: Record<string, unknown>, unset?: Record<string, ''>): Promise<Client> {
    const tenant = this.parse(tenantIdSchema, tenantId, 'tenantId');
    const updated = await this.collection.findOneAndUpdate(
      operation,
      { tenant_id: tenant },
      this.stampUpdate({ $set: set, ...(unset && { $unset: unset }) }),
    );
    if (!updated) throw new NotFoundError(this.name, `tenant ${tenant}`);
    return updated as Client;
  }

  /** Clients in one status, newest first. */
  async listByStatus(status: (typeof clientStatuses)[number], options: PageOptions = {}): Promise<Page<Client>> {
    return this.page(
      'listByStatus',
      { status: this.parse(z.enum(clientStatuses), status, 'status') },
      { ...options, sort: { field: '_id', direction: 'desc' } },
    );
  }
}
