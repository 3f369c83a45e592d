import { type Document, TENANT_FIELD, TenantMismatchError } from '@caas-db/core';
import { TenancyViolationError } from './errors.js';

/** Operators that run JavaScript on the server: refused anywhere in tenant scope. */
const SERVER_SIDE_JAVASCRIPT = new Set(['$where', '$function', '$accumulator']);

/** Stages that write outside the pipeline or read across tenants: refused in tenant scope. */
const REFUSED_STAGES: Record<string, string> = {
  $out: '$out writes outside the tenant’s scope',
  $merge: '$merge writes outside the tenant’s scope',
  $collStats: '$collStats reports on every tenant’s documents',
  $indexStats: '$indexStats reports on every tenant’s index use',
  $planCacheStats: '$planCacheStats reports on every tenant’s queries',
  $currentOp: '$currentOp shows every tenant’s operations',
  $listSessions: '$listSessions shows every tenant’s sessions',
  $changeStream: 'change streams are not scoped by this layer',
  $documents: '$documents injects documents from outside the collection',
};

/** Stages that must come first, after which the tenant `$match` goes. */
const LEADING_STAGES = new Set(['$search', '$searchMeta', '$vectorSearch']);

/** What the scoping of a pipeline needs to know about the server. */
export interface PipelineScopeOptions {
  /** The server accepts `$lookup` with `localField`/`foreignField` and `pipeline` together (MongoDB 5.0+). */
  lookupLocalFieldWithPipeline: boolean;
}

/** Refuses server-side JavaScript anywhere in `value`. */
export function assertNoServerSideJavaScript(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      assertNoServerSideJavaScript(item, `${path}.${index}`);
    });
    return;
  }
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return;
  for (const [key, child] of Object.entries(value)) {
    if (SERVER_SIDE_JAVASCRIPT.has(key))
      throw new TenancyViolationError(`${path}.${key}`, `${key} (server-side JavaScript) is refused in tenant scope`);
    assertNoServerSideJavaScript(child, `${path}.${key}`);
  }
}

/** The tenant predicate as a `$match` body. */
function tenantMatch(tenant: string): Document {
  return { [TENANT_FIELD]: tenant };
}

/** Adds the tenant predicate to a filter, refusing one that names another tenant at its top level. */
export function withTenant(filter: Document | undefined, tenant: string, path: string): Document {
  if (!filter || Object.keys(filter).length === 0) return tenantMatch(tenant);
  if (Object.hasOwn(filter, TENANT_FIELD)) {
    if (filter[TENANT_FIELD] !== tenant) throw new TenantMismatchError(tenant, filter[TENANT_FIELD], path);
    return filter;
  }
  return { [TENANT_FIELD]: tenant, ...filter };
}

function scopeLookup(spec: Document, tenant: string, path: string, options: PipelineScopeOptions): Document {
  if (typeof spec.from !== 'string') throw new TenancyViolationError(`${path}.from`, '$lookup needs a collection name in from');
  const lead = { $match: tenantMatch(tenant) };
  const stages = Array.isArray(spec.pipeline)
    ? scopeSubPipeline(spec.pipeline as Document[], tenant, `${path}.pipeline`, options, false)
    : [];
  const hasLocalField = spec.localField !== undefined || spec.foreignField !== undefined;
  if (!hasLocalField) return { ...spec, pipeline: [lead, ...stages] };
  if (typeof spec.localField !== 'string' || typeof spec.foreignField !== 'string') {
    throw new TenancyViolationError(path, '$lookup needs both localField and foreignField');
  }
  if (options.lookupLocalFieldWithPipeline) return { ...spec, pipeline: [lead, ...stages] };
  // Servers without the 5.0 form: the same join as a correlated sub-pipeline. An array in
  // localField matches any of its elements, as localField/foreignField does; an array held in
  // foreignField is compared whole (the 5.0 form matches its elements too).
  const { localField, foreignField, ...rest } = spec;
  const local = '$$caas_local';
  return {
    ...rest,
    let: { ...(spec.let as Document | undefined), caas_local: `$${localField}` },
    pipeline: [
      lead,
      {
        $match: {
          // localField semantics: a scalar matches by equality, an array by any of its elements.
          $expr: { $in: [`$${foreignField}`, { $cond: [{ $isArray: local }, local, [local]] }] },
        },
      },
      ...stages,
    ],
  };
}

function scopeStage(stage: Document, tenant: string, path: string, options: PipelineScopeOptions): Document {
  const names = Object.keys(stage);
  const name = names[0];
  if (names.length !== 1 || !name?.startsWith('$'))
    throw new TenancyViolationError(path, 'a pipeline stage must have exactly one $-prefixed key');
  const where = `${path}.${name}`;
  const refusal = REFUSED_STAGES[name];
  if (refusal) throw new TenancyViolationError(where, `${refusal}; refused in tenant scope`);
  const spec = stage[name];
  switch (name) {
    case '$lookup':
      return { $lookup: scopeLookup(spec as Document, tenant, where, options) };
    case '$graphLookup': {
      const graph = spec as Document;
      if (typeof graph.from !== 'string') throw new TenancyViolationError(`${where}.from`, '$graphLookup needs a collection name in from');
      assertNoServerSideJavaScript(graph, where);
      return {
        $graphLookup: {
          ...graph,
          restrictSearchWithMatch: withTenant(
            graph.restrictSearchWithMatch as Document | undefined,
            tenant,
            `${where}.restrictSearchWithMatch`,
          ),
        },
      };
    }
    case '$unionWith': {
      const union = typeof spec === 'string' ? { coll: spec } : (spec as Document);
      if (typeof union.coll !== 'string') throw new TenancyViolationError(`${where}.coll`, '$unionWith needs a collection name');
      const inner = Array.isArray(union.pipeline) ? (union.pipeline as Document[]) : [];
      return { $unionWith: { ...union, pipeline: scopeSubPipeline(inner, tenant, `${where}.pipeline`, options, true) } };
    }
    case '$facet': {
      const facets = spec as Record<string, Document[]>;
      return {
        $facet: Object.fromEntries(
          Object.entries(facets).map(([facet, pipeline]) => {
            if (!Array.isArray(pipeline)) throw new TenancyViolationError(`${where}.${facet}`, 'a facet must be a pipeline');
            // A facet reads the already-scoped stream: only its own joins need scoping.
            return [facet, scopeSubPipeline(pipeline, tenant, `${where}.${facet}`, options, false)];
          }),
        ),
      };
    }
    case '$geoNear': {
      const geo = spec as Document;
      assertNoServerSideJavaScript(geo, where);
      return { $geoNear: { ...geo, query: withTenant(geo.query as Document | undefined, tenant, `${where}.query`) } };
    }
    default:
      assertNoServerSideJavaScript(spec, where);
      return stage;
  }
}

function scopeSubPipeline(
  pipeline: Document[],
  tenant: string,
  path: string,
  options: PipelineScopeOptions,
  leadWithTenant: boolean,
): Document[] {
  const stages = pipeline.map((stage, index) => {
    if (typeof stage !== 'object' || stage === null || Array.isArray(stage))
      throw new TenancyViolationError(`${path}.${index}`, 'a pipeline stage must be an object');
    return scopeStage(stage, tenant, `${path}.${index}`, options);
  });
  if (!leadWithTenant) return stages;
  const [first, ...rest] = stages;
  if (first && '$geoNear' in first) return stages;
  if (first && LEADING_STAGES.has(Object.keys(first)[0] ?? '')) return [first, { $match: tenantMatch(tenant) }, ...rest];
  if (first && '$match' in first) return [{ $match: withTenant(first.$match as Document, tenant, `${path}.0.$match`) }, ...rest];
  return [{ $match: tenantMatch(tenant) }, ...stages];
}

/**
 * Scopes an aggregation pipeline run on a tenant-owned collection to one tenant, at every level:
 * the pipeline leads with the tenant predicate (merged into a leading `$match`, after a leading
 * `$search`/`$vectorSearch`, into `$geoNear.query`), and so does every sub-pipeline that reads
 * another collection: `$lookup` (both forms), `$graphLookup` (`restrictSearchWithMatch`),
 * `$unionWith`; `$facet` sub-pipelines are scoped for their joins. `$out`, `$merge`, server-side
 * JavaScript and cross-tenant stages are refused.
 * @throws {TenancyViolationError} or {TenantMismatchError}; nothing is sent then.
 */
export function scopePipeline(pipeline: readonly Document[], tenant: string, options: PipelineScopeOptions, path = 'pipeline'): Document[] {
  if (!Array.isArray(pipeline)) throw new TenancyViolationError(path, 'a pipeline must be an array');
  return scopeSubPipeline([...pipeline], tenant, path, options, true);
}
