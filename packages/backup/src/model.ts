import type { DataLayer, Document, RepositoryDefinition } from '@caas-db/core';
import { BSON } from '@caas-db/core';
import type { z } from 'zod';

/**
 * Tenant-owned collections that are the platform's bookkeeping rather than the tenant's data:
 * quota counters are recounted, and a tenant database's owner marker is written when the database
 * is provisioned, not restored.
 */
const BOOKKEEPING = new Set(['tenant_usage', 'tenant_database_owner', '_caas_tenant_owner']);

/** The model definition of every tenant-owned repository the data layer built, by collection. */
export function tenantModelOf(data: DataLayer): Map<string, RepositoryDefinition<z.ZodObject>> {
  const definitions = new Map<string, RepositoryDefinition<z.ZodObject>>();
  for (const value of Object.values(data)) {
    const definition = (value as { definition?: RepositoryDefinition<z.ZodObject> } | null)?.definition;
    if (definition?.tenantOwned && !definitions.has(definition.collection)) definitions.set(definition.collection, definition);
  }
  return definitions;
}

/** The collections a tenant backup covers by default: every tenant-owned collection of the data model. */
export function defaultCollections(data: DataLayer): string[] {
  return [...tenantModelOf(data).keys()].filter((collection) => !BOOKKEEPING.has(collection)).sort();
}

/** Fields the repository adds to every stored document (not part of the domain schema). */
const SYSTEM_FIELDS = ['_id', 'created_at', 'updated_at', 'schema_version', 'version', 'deleted_at'];

/**
 * Checks a stored document against its model's schema: the domain fields must parse (system
 * fields aside). Returns the problems, empty when it passes.
 */
export function schemaProblems(definition: RepositoryDefinition<z.ZodObject>, stored: Document): string[] {
  // Promote exact BSON types (Int32, Double) to JS values, as the driver does for repositories.
  const plain = BSON.deserialize(BSON.serialize(stored)) as Document;
  const shape = definition.schema.shape as Record<string, unknown>;
  for (const field of SYSTEM_FIELDS) if (!(field in shape)) delete plain[field];
  const result = definition.schema.safeParse(plain);
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
}
