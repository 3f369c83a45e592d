import { z } from 'zod';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { tenantIdSchema, text } from '../schema/primitives.js';

/** The fields of an `applications` document: one app of a client (web, mobile, server). A platform collection. */
export const applicationSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  name: text(256, 1),
  platform: z.enum(['web', 'ios', 'android', 'server']),
  status: z.enum(['active', 'disabled']).default('active'),
  /** Origins a web application may call from. */
  allowed_origins: z
    .array(z.url({ protocol: /^https?$/ }).max(2048))
    .max(100)
    .default([]),
});

/** A stored application. */
export type Application = StoredDocument<typeof applicationSchema>;

/** The definition of `applications`. */
export const applicationsDefinition: RepositoryDefinition<typeof applicationSchema> = {
  collection: 'applications',
  schema: applicationSchema,
  tenantOwned: false,
  schemaVersion: 1,
  softDelete: true,
  indexes: [{ name: 'tenant_id', key: { tenant_id: 1, _id: -1 }, purpose: 'a client’s applications (listForTenant)' }],
  queries: [
    { name: 'listForTenant', equality: ['tenant_id'], sort: [['_id', -1]] },
    { name: 'findById', equality: ['_id'] },
  ],
};

/** The applications of the platform's clients. */
export class ApplicationRepository extends Repository<typeof applicationSchema> {
  /** A client's applications, newest first. */
  async listForTenant(tenantId: string, options: PageOptions = {}): Promise<Page<Application>> {
    const filter = { tenant_id: this.parse(tenantIdSchema, tenantId, 'tenantId'), deleted_at: null };
    return this.page('listForTenant', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }
}
