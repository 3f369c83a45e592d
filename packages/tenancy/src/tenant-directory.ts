import type { Client, ClientRepository } from '@caas-db/core';
import { LRUCache } from 'lru-cache';
import { TenantNotFoundError, TenantSuspendedError } from './errors.js';

/** What the directory knows of a tenant. */
export interface TenantRecord {
  tenant: string;
  status: Client['status'];
  plan: Client['plan'];
  region: string;
  suspensionReason: string | undefined;
}

// lru-cache refuses null values, and "no such tenant" must be cached too.
interface Entry {
  record: TenantRecord | null;
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

/** The loads of one tenant's record under way, and the generation they belong to. */
interface Loads {
  /** Bumped by {@link TenantDirectory.forget}: a load of an older generation stores nothing. */
  generation: number;
  /** The current generation's load, which later lookups join. */
  current: Promise<TenantRecord | null> | undefined;
  /** Loads under way, of any generation (the entry is dropped when none is left). */
  running: number;
}

/**
 * Answers "is this tenant active?" from `clients`, cached: one read per tenant per `ttlMS`, and one
 * read for any number of concurrent first lookups of the same tenant. A suspension therefore takes
 * effect within `ttlMS` on every instance (call {@link forget} on the instance that suspends).
 */
export class TenantDirectory {
  readonly #clients: () => ClientRepository;
  readonly #entries: LRUCache<string, Entry>;
  /** Per tenant with a load under way: bounded by the loads in flight, not by the tenants ever seen. */
  readonly #loads = new Map<string, Loads>();
  readonly #ttlMS: number;
  readonly #negativeTtlMS: number;

  constructor(clients: () => ClientRepository, options: TenantDirectoryOptions = {}) {
    this.#clients = clients;
    this.#ttlMS = options.ttlMS ?? 30_000;
    this.#negativeTtlMS = options.negativeTtlMS ?? 5000;
    this.#entries = new LRUCache<string, Entry>({ max: options.maxEntries ?? 10_000 });
  }

  /** The tenant's record, or null when no client owns it. */
  async lookup(tenant: string): Promise<TenantRecord | null> {
    const cached = this.#entries.get(tenant);
    if (cached) return cached.record;
    let loads = this.#loads.get(tenant);
    if (!loads) {
      loads = { generation: 0, current: undefined, running: 0 };
      this.#loads.set(tenant, loads);
    }
    if (!loads.current) {
      const state = loads;
      const generation = state.generation;
      state.running += 1;
      const load = this.#load(tenant, () => state.generation === generation).finally(() => {
        if (state.current === load) state.current = undefined;
        state.running -= 1;
        if (state.running === 0 && this.#loads.get(tenant) === state) this.#loads.delete(tenant);
      });
      state.current = load;
    }
    return loads.current as Promise<TenantRecord | null>;
  }

  /** Reads the record; stores it only while `current()` holds (no {@link forget} since the read began). */
  async #load(tenant: string, current: () => boolean): Promise<TenantRecord | null> {
    const client = await this.#clients().findByTenantId(tenant);
    const record: TenantRecord | null = client
      ? { tenant, status: client.status, plan: client.plan, region: client.region, suspensionReason: client.suspension_reason }
      : null;
    const ttl = record ? this.#ttlMS : this.#negativeTtlMS;
    // To lru-cache a ttl of 0 means "never expires"; here it means "do not cache". A read that began
    // before a forget may hold the old status (active, before a suspension): it is not stored.
    if (ttl > 0 && current()) this.#entries.set(tenant, { record }, { ttl });
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

  /**
   * Drops what is cached of a tenant (after suspending or reactivating it), and invalidates its
   * lookups in flight: they started before the change and may have read the old status, so their
   * result is not stored, and lookups from now on read again instead of joining them.
   */
  forget(tenant: string): void {
    this.#entries.delete(tenant);
    const loads = this.#loads.get(tenant);
    if (loads) {
      loads.generation += 1;
      loads.current = undefined;
    }
  }
}
