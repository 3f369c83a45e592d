import type { Client, ClientRepository } from '@caas-db/core';
import { TenantNotFoundError, TenantSuspendedError } from './errors.js';

/** What the directory knows of a tenant. */
export interface TenantRecord {
  tenant: string;
  status: Client['status'];
  plan: Client['plan'];
  region: string;
  suspensionReason: string | undefined;
}

interface Entry {
  record: TenantRecord | null;
  expiresAt: number;
}

/** Options of {@link TenantDirectory}. */
export interface TenantDirectoryOptions {
  /** How long a tenant's status is trusted before it is read again. @default 30000 */
  ttlMS?: number;
  /** How long "no such tenant" is remembered. @default 5000 */
  negativeTtlMS?: number;
  /** Tenants remembered at most (least recently used are forgotten). @default 10000 */
  maxEntries?: number;
}

/**
 * Answers "is this tenant active?" from `clients`, cached: one read per tenant per `ttlMS`, and one
 * read for any number of concurrent first lookups of the same tenant. A suspension therefore takes
 * effect within `ttlMS` on every instance (call {@link forget} on the instance that suspends).
 */
export class TenantDirectory {
  readonly #clients: () => ClientRepository;
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<TenantRecord | null>>();
  readonly #ttlMS: number;
  readonly #negativeTtlMS: number;
  readonly #maxEntries: number;

  constructor(clients: () => ClientRepository, options: TenantDirectoryOptions = {}) {
    this.#clients = clients;
    this.#ttlMS = options.ttlMS ?? 30_000;
    this.#negativeTtlMS = options.negativeTtlMS ?? 5000;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** The tenant's record, or null when no client owns it. */
  async lookup(tenant: string): Promise<TenantRecord | null> {
    const cached = this.#entries.get(tenant);
    if (cached && cached.expiresAt > Date.now()) {
      // Re-insert to keep the map in least-recently-used order.
      this.#entries.delete(tenant);
      this.#entries.set(tenant, cached);
      return cached.record;
    }
    let loading = this.#loading.get(tenant);
    if (!loading) {
      loading = this.#load(tenant).finally(() => this.#loading.delete(tenant));
      this.#loading.set(tenant, loading);
    }
    return loading;
  }

  async #load(tenant: string): Promise<TenantRecord | null> {
    const client = await this.#clients().findByTenantId(tenant);
    const record: TenantRecord | null = client
      ? { tenant, status: client.status, plan: client.plan, region: client.region, suspensionReason: client.suspension_reason }
      : null;
    this.#entries.set(tenant, { record, expiresAt: Date.now() + (record ? this.#ttlMS : this.#negativeTtlMS) });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    return record;
  }

  /**
   * The record of an active tenant.
   * @throws {TenantNotFoundError} when no client owns it.
   * @throws {TenantSuspendedError} when its client is suspended.
   */
  async requireActive(tenant: string): Promise<TenantRecord> {
    const record = await this.lookup(tenant);
    if (!record) throw new TenantNotFoundError(tenant);
    if (record.status !== 'active') throw new TenantSuspendedError(tenant, record.suspensionReason);
    return record;
  }

  /** Drops what is cached of a tenant (after suspending or reactivating it). */
  forget(tenant: string): void {
    this.#entries.delete(tenant);
  }
}
