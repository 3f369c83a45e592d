import { type Document, Repository } from '@caas-db/core';
import type { ZodObject } from 'zod';

/** A read preference for a class of queries (search, analytics) that may run on secondaries. */
export type ReadPreferenceMode = 'primary' | 'primaryPreferred' | 'secondary' | 'secondaryPreferred' | 'nearest';

/**
 * A repository that runs aggregation pipelines through the choke point, so they are scoped to the
 * tenant like every other command (the tenancy package scopes every level of them).
 */
export class PipelineRepository<S extends ZodObject> extends Repository<S> {
  /** Runs `pipeline` for the bound (or ambient) tenant. */
  run(operation: string, pipeline: Document[], readPreference?: ReadPreferenceMode): Promise<Document[]> {
    this.requireTenant(operation);
    return this.collection.aggregate(operation, pipeline, readPreference ? { readPreference } : {});
  }
}
