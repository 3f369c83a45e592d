import type { Document } from 'mongodb';

/** One index a repository declares. */
export interface IndexDeclaration {
  /** A stable name: sync compares indexes by name. */
  name: string;
  /** Fields in order, with direction (or `'text'`). */
  key: Record<string, 1 | -1 | 'text' | '2dsphere' | 'hashed'>;
  unique?: boolean;
  sparse?: boolean;
  /** Documents are deleted this many seconds after the date in the (single) key field. */
  expireAfterSeconds?: number;
  partialFilterExpression?: Document;
  /** What it is for, shown in `docs/data-model.md`. */
  purpose: string;
}

/**
 * The shape of one query a repository sends: equality fields (any order), then the sort, then
 * range fields. `residual` fields are filtered after the index lookup (e.g. `deleted_at`).
 */
export interface QueryShape {
  /** The repository method(s) that send it. */
  name: string;
  equality: string[];
  sort?: Array<[field: string, direction: 1 | -1]>;
  range?: string[];
  /** Predicates applied after the index narrowed the scan. */
  residual?: string[];
}

/** The options of an index that sync compares. */
const COMPARED_OPTIONS = ['unique', 'sparse', 'expireAfterSeconds', 'partialFilterExpression'] as const;

/** How an existing index differs from its declaration. */
export interface IndexDifference {
  name: string;
  field: 'key' | (typeof COMPARED_OPTIONS)[number];
  declared: unknown;
  actual: unknown;
}

/** What {@link IndexDeclaration}s and a collection's indexes disagree on. */
export interface IndexDrift {
  missing: IndexDeclaration[];
  /** Indexes on the server that no declaration names (the `_id_` index is never listed). */
  extra: string[];
  different: IndexDifference[];
}

function canonical(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** Compares declarations with what `listIndexes` returned. */
export function compareIndexes(declared: readonly IndexDeclaration[], existing: readonly Document[]): IndexDrift {
  const byName = new Map(existing.map((index) => [String(index.name), index]));
  const drift: IndexDrift = { missing: [], extra: [], different: [] };
  for (const declaration of declared) {
    const actual = byName.get(declaration.name);
    if (!actual) {
      drift.missing.push(declaration);
      continue;
    }
    // A text index lists its key as { _fts: 'text', _ftsx: 1 }: compare only non-text keys there.
    const isText = Object.values(declaration.key).includes('text');
    if (!isText && canonical(Object.entries(actual.key)) !== canonical(Object.entries(declaration.key))) {
      drift.different.push({ name: declaration.name, field: 'key', declared: declaration.key, actual: actual.key });
    }
    for (const option of COMPARED_OPTIONS) {
      const declaredValue = declaration[option] ?? (option === 'unique' || option === 'sparse' ? false : undefined);
      const actualValue = actual[option] ?? (option === 'unique' || option === 'sparse' ? false : undefined);
      if (canonical(declaredValue) !== canonical(actualValue)) {
        drift.different.push({ name: declaration.name, field: option, declared: declaredValue, actual: actualValue });
      }
    }
  }
  const declaredNames = new Set(declared.map((declaration) => declaration.name));
  for (const name of byName.keys()) if (name !== '_id_' && !declaredNames.has(name)) drift.extra.push(name);
  return drift;
}

/**
 * True when `index` serves `shape` without scanning outside the query's range: its leading keys are
 * the shape's equality fields (in any order), followed by the sort fields in order (or all
 * reversed), followed optionally by range fields.
 */
export function indexServes(index: IndexDeclaration, shape: QueryShape): boolean {
  const keys = Object.entries(index.key);
  let position = 0;
  const equality = new Set(shape.equality);
  while (position < keys.length && equality.has(keys[position]?.[0] ?? '')) {
    equality.delete(keys[position]?.[0] ?? '');
    position += 1;
  }
  if (equality.size > 0) return false;
  const sort = shape.sort ?? [];
  if (sort.length > 0) {
    const forward = sort.every(([field, direction], offset) => {
      const entry = keys[position + offset];
      return entry?.[0] === field && entry[1] === direction;
    });
    const backward = sort.every(([field, direction], offset) => {
      const entry = keys[position + offset];
      return entry?.[0] === field && entry[1] === -direction;
    });
    if (!forward && !backward) return false;
    position += sort.length;
  }
  for (const field of shape.range ?? []) {
    if (keys[position]?.[0] !== field) return false;
    position += 1;
  }
  return true;
}
