import { type Document, Repository, type RepositoryDefinition } from '@caas-db/core';
import { z } from 'zod';

/** The phases of a tenant move, in order. */
export const movePhases = ['copying', 'fencing', 'fenced', 'switched'] as const;

/** Where a tenant move stands: copying (reads and writes served by the source), fencing (in-flight calls drain), fenced (writes wait; final sync and verify), switched (the target serves the tenant; the source copy is being deleted). */
export type MovePhase = (typeof movePhases)[number];

/** The persisted state of one tenant's move (collection `tenant_moves` of the directory). */
export interface MoveRecord {
  tenant_id: string;
  /** Cluster names. */
  from: string;
  to: string;
  phase: MovePhase;
  /** Per collection, the last `_id` copied in the copying phase (resume point). */
  checkpoints: Record<string, unknown>;
  /** Per collection, what the verification found on both sides. */
  verified?: Record<string, { count: number; hash: string }>;
  started_at: Date;
  updated_at: Date;
}

const moveSchema = z.strictObject({
  tenant_id: z.string(),
  from: z.string(),
  to: z.string(),
  phase: z.enum(movePhases),
  checkpoints: z.record(z.string(), z.unknown()),
  verified: z.record(z.string(), z.strictObject({ count: z.number(), hash: z.string() })).optional(),
  started_at: z.date(),
});

/** `tenant_moves`: one document per tenant move under way, in the directory (platform collection). */
export const tenantMovesDefinition: RepositoryDefinition<typeof moveSchema> = {
  collection: 'tenant_moves',
  schema: moveSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [{ name: 'tenant_id', key: { tenant_id: 1 }, unique: true, purpose: 'one move per tenant at a time' }],
  queries: [{ name: 'move of a tenant', equality: ['tenant_id'] }],
};

const operation = (name: string) => ({ name, idempotent: true });

/** Reads and writes move records; every command through the directory's pipeline. */
export class MoveStore extends Repository<typeof moveSchema> {
  /** The move of `tenant` under way, or null. */
  async get(tenant: string): Promise<MoveRecord | null> {
    const [found] = await this.collection.find(operation('get'), { tenant_id: tenant }, { limit: 1 });
    return (found as MoveRecord | undefined) ?? null;
  }

  /** Records a new move; a concurrent start of the same tenant's move meets the unique index. */
  async start(tenant: string, from: string, to: string, now: Date): Promise<MoveRecord> {
    const record: MoveRecord = { tenant_id: tenant, from, to, phase: 'copying', checkpoints: {}, started_at: now, updated_at: now };
    await this.collection.insertOne({ name: 'start', idempotent: false }, { ...record });
    return record;
  }

  /** Sets fields of the tenant's move record. */
  async set(tenant: string, fields: Document): Promise<void> {
    await this.collection.updateOne(operation('set'), { tenant_id: tenant }, { $set: { ...fields, updated_at: new Date() } });
  }

  /** Removes the tenant's move record: the move is over. */
  async finish(tenant: string): Promise<void> {
    await this.collection.deleteOne(operation('finish'), { tenant_id: tenant });
  }
}
