import type { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import type { CreateInput } from '../repository/repository-types.js';
import type { IdInput } from '../schema/primitives.js';
import type { ApiKey, ApiKeyRepository } from './api-keys.js';
import type { Application, ApplicationRepository } from './applications.js';
import type { AuditLog, AuditLogRepository, auditLogSchema } from './audit-logs.js';
import type { BillingRepository, billingMetrics } from './billing.js';
import type { Client, ClientRepository, plans } from './clients.js';

type IssueInput = Parameters<ApiKeyRepository['issue']>[0];

/**
 * A tenant's own platform records, for a tenant-bound view (`dataLayer.forTenant(id).account`):
 * its client record, applications, API keys, audit entries and billing, and nothing of any other
 * tenant. Platform-wide administration (suspending a client, revoking any key, reading any
 * tenant's audit trail) lives on the unbound data layer only.
 */
export interface TenantAccount {
  /** The tenant's client record, or null when it has none. */
  client(): Promise<Client | null>;
  /** The tenant's applications, newest first. */
  applications(options?: PageOptions): Promise<Page<Application>>;
  readonly apiKeys: {
    /** Issues a key for this tenant (see `ApiKeyRepository.issue`); the secret is returned once. */
    issue(input: Omit<IssueInput, 'tenant_id'>): Promise<{ key: ApiKey; secret: string }>;
    /** The tenant's keys, newest first. */
    list(options?: PageOptions): Promise<Page<ApiKey>>;
    /**
     * Revokes one of the tenant's keys. @returns true when this call revoked it.
     * @throws {NotFoundError} when the tenant has no such key (another tenant's key included).
     */
    revoke(id: IdInput): Promise<boolean>;
  };
  readonly auditLogs: {
    /** Appends an entry to the tenant's audit trail. */
    append(entry: Omit<CreateInput<typeof auditLogSchema>, 'tenant_id'>): Promise<AuditLog>;
    /** The tenant's audit trail, newest first. */
    list(options?: PageOptions): Promise<Page<AuditLog>>;
  };
  readonly billing: {
    /** The tenant's usage in a billing period (`YYYY-MM`). */
    usageFor(period: string): Promise<Partial<Record<(typeof billingMetrics)[number], number>>>;
    /** The tenant's plan at a moment (now by default). */
    currentPlan(at?: Date): Promise<(typeof plans)[number] | null>;
  };
}

/** The platform repositories a tenant account view reads through. */
export interface PlatformRepositories {
  clients: ClientRepository;
  applications: ApplicationRepository;
  apiKeys: ApiKeyRepository;
  auditLogs: AuditLogRepository;
  billing: BillingRepository;
}

/** Builds the account view of `tenant` over the platform repositories. */
export function createTenantAccount(tenant: string, platform: PlatformRepositories): TenantAccount {
  return {
    client: () => platform.clients.findByTenantId(tenant),
    applications: (options) => platform.applications.listForTenant(tenant, options),
    apiKeys: {
      issue: (input) => platform.apiKeys.issue({ ...(input as object), tenant_id: tenant } as z.input<never>),
      list: (options) => platform.apiKeys.listForTenant(tenant, options),
      async revoke(id) {
        const key = await platform.apiKeys.findOne({ _id: id, tenant_id: tenant } as never, { projection: { _id: 1 } });
        if (!key) throw new NotFoundError('api_keys', String(id));
        return platform.apiKeys.revoke(key._id);
      },
    },
    auditLogs: {
      append: (entry) => platform.auditLogs.append({ ...(entry as object), tenant_id: tenant } as CreateInput<typeof auditLogSchema>),
      list: (options) => platform.auditLogs.listForTenant(tenant, options),
    },
    billing: {
      usageFor: (period) => platform.billing.usageFor(tenant, period),
      currentPlan: (at) => platform.billing.currentPlan(tenant, at),
    },
  };
}
