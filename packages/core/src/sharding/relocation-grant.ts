import type { CollectionCommand } from '../collection/collection-command.js';

/**
 * The grant of a tenant relocation (`@caas-db/regions` moving a tenant between clusters): the
 * operation copies documents verbatim into another cluster and deletes them from the old one once
 * the new one serves the tenant. Copied documents already passed their model's invariants when they
 * were first written, and the old copies must go even from append-only collections, so the
 * `invariants` layer lets exactly these commands through for the holder, and nothing else:
 * updates stay checked. Only `@caas-db/core/unsafe` exports it.
 */
export const relocationGrant: unique symbol = Symbol('caas-db tenant relocation');

/** The commands a relocation sends: verbatim inserts and replacements by `_id`, and deletes. */
const RELOCATION_KINDS: ReadonlySet<CollectionCommand['kind']> = new Set(['insertMany', 'insertOne', 'deleteMany', 'deleteOne']);

/**
 * True when `grant` is the relocation grant and the command is one a relocation sends (inserts,
 * deletes, and bulk writes of whole-document replacements by `_id`).
 */
export function isRelocation(grant: symbol | undefined, command: CollectionCommand): boolean {
  if (grant !== relocationGrant) return false;
  if (RELOCATION_KINDS.has(command.kind)) return true;
  return (
    command.kind === 'bulkWrite' &&
    command.operations.every((operation) => 'replaceOne' in operation || 'insertOne' in operation || 'deleteOne' in operation)
  );
}
