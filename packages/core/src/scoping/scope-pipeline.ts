import type { Document } from 'mongodb';
import { TenancyViolationError, TenantMismatchError } from '../errors.js';
import { TENANT_FIELD } from './tenant-field.js';

/** Operators that run JavaScript on the server: refused anywhere in tenant scope. */
const SERVER_SIDE_JAVASCRIPT = new Set(['$where', '$function', '$accumulator']);

/**
 * Stages refused on a tenant-owned collection in tenant scope, and why. `$collStats`,
 * `$indexStats`, `$documents` and `$changeStream` must come first in a pipeline, so they could only
 * be scoped by a `$match` after them, which cannot hide what they report or inject.
 */
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

/** Stages MongoDB requires first: the tenant `$match` goes right after them. */
const LEADING_STAGES = new Set(['$search', '$searchMeta', '$vectorSearch']);

/** What scoping a pipeline needs to know. */
export interface PipelineScope {
  /** The tenant in scope, if any. */
  readonly tenant: string | undefined;
  /** Whether a collection's documents belong to tenants. */
  readonly isTenantOwned: (collection: string) => boolean;
  /** The server accepts `$lookup` with `localField`/`foreignField` and `pipeline` together (MongoDB 5.0+). */
  readonly lookupLocalFieldWithPipeline: boolean;
  /** Called when a tenant-owned collection is reached with no tenant in scope; returns normally to leave it unscoped. */
  readonly onUnbound: (path: string) => void;
}

/** Values the BSON serializer writes as themselves, with nothing inside to walk. */
function isBsonLeaf(value: object): boolean {
  return (
    value instanceof Date ||
    value instanceof RegExp ||
    ArrayBuffer.isView(value) ||
    typeof (value as { _bsontype?: unknown })._bsontype === 'string'
  );
}

/**
 * Refuses server-side JavaScript anywhere in `value`, walking every object by its own keys whatever
 * its prototype. Refuses what cannot be checked by walking: functions (a `toBSON` method would
 * serialize something other than what was checked) and class instances that are not BSON values.
 */
export function assertNoServerSideJavaScript(value: unknown, path: string, depth = 0): void {
  if (typeof value === 'function') throw new TenancyViolationError(path, 'a function cannot be sent (toBSON would bypass the checks)');
  if (typeof value !== 'object' || value === null) return;
  if (depth > 100) throw new TenancyViolationError(path, 'a command nested more than 100 levels deep is refused');
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      assertNoServerSideJavaScript(item, `${path}.${index}`, depth + 1);
    });
    return;
  }
  if (isBsonLeaf(value)) return;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null)
    throw new TenancyViolationError(path, 'only plain objects, arrays and BSON values can be sent in tenant scope');
  if (typeof (value as { toBSON?: unknown }).toBSON === 'function')
    throw new TenancyViolationError(`${path}.toBSON`, 'toBSON would serialize something other than what was checked');
  for (const [key, child] of Object.entries(value)) {
    if (SERVER_SIDE_JAVASCRIPT.has(key))
      throw new TenancyViolationError(`${path}.${key}`, `${key} (server-side JavaScript) is refused in tenant scope`);
    assertNoServerSideJavaScript(child, `${path}.${key}`, depth + 1);
  }
}

function tenantMatch(tenant: string): Document {
  return { [TENANT_FIELD]: tenant };
}

/** Adds the tenant predicate to a filter, refusing one that names another tenant at its top level. */
export function withTenant(filter: Document | undefined, tenant: string, path: string): Document {
  if (filter !== undefined && (typeof filter !== 'object' || filter === null || Array.isArray(filter)))
    throw new TenancyViolationError(path, 'a filter must be an object');
  assertNoServerSideJavaScript(filter, path);
  if (!filter || Object.keys(filter).length === 0) return tenantMatch(tenant);
  if (Object.hasOwn(filter, TENANT_FIELD)) {
    if (filter[TENANT_FIELD] !== tenant) throw new TenantMismatchError(tenant, filter[TENANT_FIELD], path);
    return filter;
  }
  return { [TENANT_FIELD]: tenant, ...filter };
}

/** How one level of a pipeline is scoped: whose documents its input stream holds. */
interface Level {
  /** The collection the level reads is tenant-owned (its input must be scoped). */
  readonly owned: boolean;
  /** The level reads a collection of its own (top level, `$lookup`, `$unionWith`), so may lead with a `$match`. */
  readonly leads: boolean;
  /** `$geoNear` may only be the first stage of a top-level pipeline. */
  readonly topLevel: boolean;
}

class PipelineScoper {
  readonly #scope: PipelineScope;

  constructor(scope: PipelineScope) {
    this.#scope = scope;
  }

  /** The tenant for a tenant-owned part at `path`, or undefined (left unscoped) when none is in scope and that is allowed. */
  #tenantFor(path: string): string | undefined {
    if (this.#scope.tenant === undefined) this.#scope.onUnbound(path);
    return this.#scope.tenant;
  }

  pipeline(pipeline: unknown, path: string, level: Level): Document[] {
    if (!Array.isArray(pipeline)) throw new TenancyViolationError(path, 'a pipeline must be an array');
    const stages = (pipeline as unknown[]).map((stage, index) => {
      if (typeof stage !== 'object' || stage === null || Array.isArray(stage))
        throw new TenancyViolationError(`${path}.${index}`, 'a pipeline stage must be an object');
      return this.#stage(stage as Document, `${path}.${index}`, level, index);
    });
    if (!level.owned || !level.leads) return stages;
    const tenant = this.#tenantFor(path);
    if (tenant === undefined) return stages;
    const [first, ...rest] = stages;
    const firstName = first ? Object.keys(first)[0] : undefined;
    if (firstName === '$geoNear') return stages; // scoped inside its query by #stage
    if (firstName !== undefined && LEADING_STAGES.has(firstName)) return [first as Document, { $match: tenantMatch(tenant) }, ...rest];
    if (firstName === '$match') return [{ $match: withTenant(first?.$match as Document, tenant, `${path}.0.$match`) }, ...rest];
    return [{ $match: tenantMatch(tenant) }, ...stages];
  }

  /** Whether this level's data or a target is in tenant scope (JavaScript and cross-tenant stages are refused there). */
  #inTenantScope(level: Level): boolean {
    return this.#scope.tenant !== undefined || level.owned;
  }

  #stage(stage: Document, path: string, level: Level, index: number): Document {
    const names = Object.keys(stage);
    const name = names[0];
    if (names.length !== 1 || !name?.startsWith('$'))
      throw new TenancyViolationError(path, 'a pipeline stage must have exactly one $-prefixed key');
    const where = `${path}.${name}`;
    const spec = stage[name];
    if (this.#inTenantScope(level)) {
      const refusal = REFUSED_STAGES[name];
      if (refusal) throw new TenancyViolationError(where, `${refusal}; refused in tenant scope`);
      assertNoServerSideJavaScript(spec, where);
    } else if (name === '$out' || name === '$merge') {
      this.#refuseWriteInto(spec, name, where);
    }
    switch (name) {
      case '$lookup':
        return { $lookup: this.#lookup(spec as Document, where) };
      case '$unionWith': {
        const union = typeof spec === 'string' ? { coll: spec } : (spec as Document);
        if (typeof union.coll !== 'string') throw new TenancyViolationError(`${where}.coll`, '$unionWith needs a collection name');
        const owned = this.#scope.isTenantOwned(union.coll);
        const inner = union.pipeline === undefined ? [] : union.pipeline;
        return {
          $unionWith: { ...union, pipeline: this.pipeline(inner, `${where}.pipeline`, { owned, leads: true, topLevel: false }) },
        };
      }
      case '$graphLookup': {
        const graph = spec as Document;
        if (typeof graph.from !== 'string')
          throw new TenancyViolationError(`${where}.from`, '$graphLookup needs a collection name in from');
        if (!this.#scope.isTenantOwned(graph.from)) return stage;
        const tenant = this.#tenantFor(where);
        if (tenant === undefined) return stage;
        assertNoServerSideJavaScript(graph, where);
        const restrict = withTenant(graph.restrictSearchWithMatch as Document | undefined, tenant, `${where}.restrictSearchWithMatch`);
        return { $graphLookup: { ...graph, restrictSearchWithMatch: restrict } };
      }
      case '$facet': {
        if (typeof spec !== 'object' || spec === null) throw new TenancyViolationError(where, '$facet needs an object of pipelines');
        // A facet reads this level's already-scoped stream: only its own joins need scoping.
        const facets = Object.entries(spec as Record<string, unknown>).map(([facet, sub]) => [
          facet,
          this.pipeline(sub, `${where}.${facet}`, { owned: level.owned, leads: false, topLevel: false }),
        ]);
        return { $facet: Object.fromEntries(facets) };
      }
      case '$geoNear': {
        if (!level.owned) return stage;
        if (!level.topLevel || index !== 0) throw new TenancyViolationError(where, '$geoNear must be the first stage of the pipeline');
        const tenant = this.#tenantFor(where);
        if (tenant === undefined) return stage;
        const geo = spec as Document;
        return { $geoNear: { ...geo, query: withTenant(geo.query as Document | undefined, tenant, `${where}.query`) } };
      }
      default:
        return stage;
    }
  }

  /** Outside tenant scope, `$out`/`$merge` may still not write into a tenant-owned collection. */
  #refuseWriteInto(spec: unknown, name: string, where: string): void {
    const target =
      typeof spec === 'string'
        ? spec
        : typeof spec === 'object' && spec !== null
          ? ((spec as Document).into ?? (spec as Document).coll)
          : undefined;
    const collection = typeof target === 'string' ? target : (target as Document | undefined)?.coll;
    if (typeof collection !== 'string' || this.#scope.isTenantOwned(collection))
      throw new TenancyViolationError(
        where,
        `${name} into a tenant-owned collection is refused: it would write documents no tenant scope checked`,
      );
  }

  #lookup(spec: Document, path: string): Document {
    if (typeof spec !== 'object' || spec === null) throw new TenancyViolationError(path, '$lookup needs an object');
    if (typeof spec.from !== 'string') throw new TenancyViolationError(`${path}.from`, '$lookup needs a collection name in from');
    const owned = this.#scope.isTenantOwned(spec.from);
    const stages =
      spec.pipeline === undefined ? [] : this.pipeline(spec.pipeline, `${path}.pipeline`, { owned, leads: false, topLevel: false });
    const hasLocalField = spec.localField !== undefined || spec.foreignField !== undefined;
    if (hasLocalField && (typeof spec.localField !== 'string' || typeof spec.foreignField !== 'string'))
      throw new TenancyViolationError(path, '$lookup needs both localField and foreignField');
    const tenant = owned ? this.#tenantFor(path) : undefined;
    if (tenant === undefined) return spec.pipeline === undefined ? spec : { ...spec, pipeline: stages };
    const lead = { $match: tenantMatch(tenant) };
    if (!hasLocalField || this.#scope.lookupLocalFieldWithPipeline) return { ...spec, pipeline: [lead, ...stages] };
    // Servers without the 5.0 form: the same join as a correlated sub-pipeline. An array in
    // localField matches any of its elements, as localField/foreignField does; an array held in
    // foreignField is compared whole (the 5.0 form matches its elements too).
    const { localField, foreignField, ...rest } = spec;
    const local = '$$caas_local';
    return {
      ...rest,
      let: { ...(spec.let as Document | undefined), caas_local: `$${localField}` },
      pipeline: [lead, { $match: { $expr: { $in: [`$${foreignField}`, { $cond: [{ $isArray: local }, local, [local]] }] } } }, ...stages],
    };
  }
}

/**
 * Scopes an aggregation pipeline at every level, each by the ownership of the collection it reads:
 * on a tenant-owned collection the pipeline leads with the tenant predicate (merged into a leading
 * `$match`, placed right after a leading `$search`/`$searchMeta`/`$vectorSearch`, put into
 * `$geoNear.query`); every `$lookup`, `$unionWith` and `$graphLookup` into a tenant-owned collection
 * is scoped too, whatever the outer collection is; `$facet` sub-pipelines are scoped for their
 * joins. `$out`, `$merge`, server-side JavaScript and cross-tenant stages are refused in tenant scope.
 * @param owned - whether the collection the pipeline runs on is tenant-owned.
 * @throws {TenancyViolationError} or {TenantMismatchError}; nothing is sent then.
 */
export function scopePipeline(pipeline: unknown, owned: boolean, scope: PipelineScope, path = 'pipeline'): Document[] {
  return new PipelineScoper(scope).pipeline(pipeline, path, { owned, leads: true, topLevel: true });
}
