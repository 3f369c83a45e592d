import type { Document } from '@caas-db/core';

/**
 * Moves a document to another tenant: every `tenant_id` field, at any depth, that names `from`
 * becomes `to`. The data model embeds the tenant nowhere else (ids are ObjectIds); pass your own
 * `rewrite` to a restore for references of your collections that do.
 */
export function rewriteTenant(document: Document, from: string, to: string): Document {
  if (from === to) return document;
  const visit = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(visit);
    if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value;
    const copy: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value as Record<string, unknown>))
      copy[key] = key === 'tenant_id' && field === from ? to : visit(field);
    return copy;
  };
  return visit(document) as Document;
}
