import {
  auditLogsDefinition,
  conversationsDefinition,
  type DataLayer,
  eventsDefinition,
  filesDefinition,
  groupsDefinition,
  messagesDefinition,
  metricsDefinition,
  type RepositoryDefinition,
  settingsDefinition,
  usersDefinition,
} from '@caas-db/core';
import type { z } from 'zod';
import { CollectionAccess, withLifecycleShapes } from './access.js';
import type { Clock } from './clock.js';
import { checkpointsDefinition, holdsDefinition, policiesDefinition } from './collections.js';

/** The collections of the data model the lifecycle reads and writes, by name. */
const modelDefinitions = {
  conversations: conversationsDefinition,
  messages: messagesDefinition,
  events: eventsDefinition,
  metrics: metricsDefinition,
  files: filesDefinition,
  groups: groupsDefinition,
  settings: settingsDefinition,
  users: usersDefinition(),
  retention_policies: policiesDefinition,
  legal_holds: holdsDefinition,
  lifecycle_checkpoints: checkpointsDefinition,
} as const satisfies Record<string, RepositoryDefinition<z.ZodObject>>;

/** A collection the lifecycle works on. */
export type LifecycleCollection = keyof typeof modelDefinitions;

/** Who an audit entry names as the actor. */
export interface Actor {
  type: 'user' | 'api_key' | 'system' | 'operator';
  id: string;
}

/** What every part of the lifecycle shares: the data layer, the clock, and tenant-bound access. */
export class LifecycleContext {
  readonly #data: DataLayer;
  readonly clock: Clock;
  readonly #access = new Map<string, CollectionAccess>();

  constructor(data: DataLayer, clock: Clock) {
    this.#data = data;
    this.clock = clock;
  }

  /** The data layer. */
  get data(): DataLayer {
    return this.#data;
  }

  /** Raw, scoped access to one of the tenant's collections (built once per tenant and collection). */
  access(tenant: string, collection: LifecycleCollection): CollectionAccess {
    const key = `${tenant}\u0000${collection}`;
    let access = this.#access.get(key);
    if (!access) {
      const definition = withLifecycleShapes(modelDefinitions[collection] as RepositoryDefinition<z.ZodObject>);
      access = this.#data.repository(definition, CollectionAccess, tenant);
      if (this.#access.size > 10_000) this.#access.clear();
      this.#access.set(key, access);
    }
    return access;
  }

  /** Creates the lifecycle's own collections' indexes (retention_policies, legal_holds, lifecycle_checkpoints). */
  async syncIndexes(): Promise<void> {
    for (const definition of [policiesDefinition, holdsDefinition, checkpointsDefinition]) {
      await this.#data.repository(definition as RepositoryDefinition<z.ZodObject>, CollectionAccess).syncIndexes();
    }
  }

  #auditAccess: CollectionAccess | undefined;

  /** How many audit entries are older than `before` (an audit purge's dry run). */
  async countAuditBefore(before: Date): Promise<number> {
    this.#auditAccess ??= this.#data.repository(auditLogsDefinition as unknown as RepositoryDefinition<z.ZodObject>, CollectionAccess);
    return this.#auditAccess.rawCount('lifecycle.audit (dry run)', { at: { $lt: before } });
  }

  /** Appends an audit entry about the tenant (never personal data in `details`). */
  async audit(
    tenant: string | undefined,
    action: string,
    actor: Actor,
    target: { collection: string; id?: string },
    details: Record<string, unknown>,
  ): Promise<void> {
    await this.#data.auditLogs.append({
      ...(tenant !== undefined && { tenant_id: tenant }),
      actor,
      action,
      target,
      details: details as never,
      at: this.clock(),
    });
  }
}
