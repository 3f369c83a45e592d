import {
  ConfigError,
  createDataLayer,
  type DataClient,
  type DataLayer,
  type DataLayerOptions,
  parseConfig,
  parseInput,
  type TenantRepositories,
  tenantIdSchema,
} from '@caas-db/core';
import { z } from 'zod';
import { CallTracker } from './call-tracker.js';
import { type TenantConcurrencyOptions, tenantConcurrencyCap } from './concurrency-cap.js';
import { ResidencyError, TenantMoveError, TenantMovingError } from './errors.js';
import { MoveStore, tenantMovesDefinition } from './move-store.js';
import { type MoveOptions, type MoveReport, moveTenant } from './move-tenant.js';
import { residencyGuard } from './residency-guard.js';
import { type ClusterInfo, type Route, TenantRouter } from './tenant-router.js';

/** Options of {@link createRegionalDataLayer}. */
export interface RegionalDataLayerOptions {
  /**
   * The data layer of the platform collections (`clients`, `api_keys`, `billing`, ...): it says
   * which region each tenant lives in (`clients.region`) and keeps the records of moves under way.
   */
  directory: DataLayer;
  /** One cluster per region, by region name (`{ 'eu-west-1': clientEU, 'us-east-1': clientUS }`). */
  regions: Record<string, DataClient>;
  /**
   * Tenants on a dedicated plan with a cluster of their own, by tenant id. `region` is where that
   * cluster's data resides; it must be the tenant's `clients.region`.
   */
  dedicated?: Record<string, { client: DataClient; region: string }>;
  /** Options of each cluster's data layer (plugins, middlewares, presets...), per cluster. */
  layerOptions?: (cluster: ClusterInfo) => Omit<DataLayerOptions, 'client'>;
  /** A cap on the operations one tenant has in flight on a cluster (see `tenantConcurrencyCap`). */
  concurrency?: TenantConcurrencyOptions;
  /**
   * How long a tenant's route (region, move phase) is kept before the directory is read again.
   * Other processes see a move's phase change within this time; a move waits this long after each
   * change that constrains them. @default 1000
   */
  routeCacheMS?: number;
  /** How long a write waits for a tenant's move to switch before failing with `TenantMovingError`. @default 30000 */
  moveWaitMS?: number;
}

const regionName = z.string().regex(/^[a-z]{2}-[a-z]+-\d$/, 'must be a region such as eu-west-1');
const dataClient = z.custom<DataClient>(
  (value) => typeof value === 'object' && value !== null && typeof (value as DataClient).capabilities === 'function',
  'must be a DataClient from createDataClient',
);

const optionsSchema = z.strictObject({
  directory: z.custom<DataLayer>(
    (value) => typeof value === 'object' && value !== null && 'clients' in value && 'repository' in value,
    'must be a DataLayer from createDataLayer',
  ),
  regions: z.record(regionName, dataClient).refine((regions) => Object.keys(regions).length > 0, 'needs at least one region'),
  dedicated: z.record(tenantIdSchema, z.strictObject({ client: dataClient, region: regionName })).optional(),
  layerOptions: z.custom<RegionalDataLayerOptions['layerOptions']>((value) => typeof value === 'function').optional(),
  concurrency: z.looseObject({}).optional(),
  routeCacheMS: z.number().int().min(0).max(3_600_000).optional(),
  moveWaitMS: z.number().int().min(0).max(3_600_000).optional(),
});

/** A data layer per cluster (one per region, one per dedicated tenant) behind one routing API. */
export interface RegionalDataLayer {
  /** Every cluster, regional ones first. */
  readonly clusters: readonly ClusterInfo[];
  /**
   * The repositories of one tenant. Every call goes to the cluster that serves the tenant at that
   * moment (its region's, or its dedicated one), so the object stays valid across a move: calls
   * arriving while the move holds writes wait for the switch (up to `moveWaitMS`) and then run on
   * the new cluster.
   * @throws {ValidationError} when `tenantId` is not a valid tenant id.
   */
  forTenant(tenantId: string): TenantRepositories;
  /** The cluster that serves the tenant now. */
  clusterOf(tenantId: string): Promise<ClusterInfo>;
  /**
   * One cluster's data layer, for platform work on that cluster (index sync, reports). Its
   * residency layer still refuses commands of tenants that cluster does not serve.
   * @throws {ConfigError} when no cluster has that name.
   */
  cluster(name: string): DataLayer;
  /**
   * Moves a tenant to another region's cluster: copy (reads and writes go on), fence (calls in
   * flight finish, new writes wait), final sync and verification (counts and SHA-256 per
   * collection), switch (`clients.region`), delete from the old cluster. Resumable: calling it again
   * after a failure or an abort continues from the recorded phase and checkpoints.
   * @throws {TenantMoveError} when aborted, when verification fails, or when a move to another region is under way.
   */
  moveTenant(tenantId: string, toRegion: string, options?: MoveOptions): Promise<MoveReport>;
  /** Creates the indexes of every cluster's repositories and of the directory's `tenant_moves`. */
  syncIndexes(): Promise<void>;
}

/**
 * Routes every command of a tenant to its region's cluster (`clients.region`), or to its dedicated
 * cluster, and refuses with `ResidencyError` any command that would reach another cluster for that
 * tenant. See docs/regions.md.
 *
 * @example
 * ```ts
 * const regional = createRegionalDataLayer({
 *   directory: createDataLayer({ client: directoryClient }),
 *   regions: { 'eu-west-1': euClient, 'us-east-1': usClient },
 *   concurrency: { perTenant: 16 },
 * });
 * await regional.forTenant('acme').messages.create({ ... }); // on acme's region's cluster
 * await regional.moveTenant('acme', 'us-east-1');
 * ```
 * @throws {ConfigError} when the options are invalid.
 */
export function createRegionalDataLayer(options: RegionalDataLayerOptions): RegionalDataLayer {
  parseConfig(optionsSchema, options);
  const { directory } = options;
  const cap = options.concurrency ? tenantConcurrencyCap(options.concurrency) : undefined;
  const moves = directory.repository(tenantMovesDefinition, MoveStore);
  const infos: ClusterInfo[] = [
    ...Object.keys(options.regions).map((region) => ({ name: region, region })),
    ...Object.entries(options.dedicated ?? {}).map(([tenant, { region }]) => ({
      name: `dedicated:${tenant}`,
      region,
      dedicatedTo: tenant,
    })),
  ];
  const dedicated = new Map(infos.filter((info) => info.dedicatedTo).map((info) => [info.dedicatedTo as string, info]));
  const router = new TenantRouter({
    directory,
    moves,
    clusterOfRegion: (region) => (region in options.regions ? region : undefined),
    dedicated,
    cacheMS: options.routeCacheMS ?? 1000,
  });
  const layers = new Map<string, DataLayer>();
  for (const info of infos) {
    const client = info.dedicatedTo
      ? (options.dedicated?.[info.dedicatedTo]?.client as DataClient)
      : (options.regions[info.name] as DataClient);
    const own = options.layerOptions?.(info) ?? {};
    layers.set(
      info.name,
      createDataLayer({
        ...own,
        client,
        // Residency first: a command refused there never takes a slot of the tenant's cap.
        middlewares: [residencyGuard(info, router), ...(cap ? [cap] : []), ...(own.middlewares ?? [])],
      }),
    );
  }
  const layerOf = (name: string): DataLayer => {
    const layer = layers.get(name);
    if (!layer) throw new ConfigError([{ path: 'cluster', message: `no cluster named ${name}`, code: 'custom' }]);
    return layer;
  };
  const tracker = new CallTracker();
  /** Tenants whose move runs in this process (one at a time per tenant). */
  const running = new Set<string>();
  const moveWaitMS = options.moveWaitMS ?? 30_000;

  /** Waits until the tenant's route lets calls in (not fencing; for writes, not fenced), or fails. */
  const admitted = async (tenant: string, deadline: number, blocked: (route: Route) => boolean): Promise<Route> => {
    let route = await router.resolve(tenant);
    while (blocked(route)) {
      if (performance.now() >= deadline) throw new TenantMovingError(tenant, `the move did not switch within ${moveWaitMS} ms`);
      await router.changed(tenant);
      route = await router.resolve(tenant);
    }
    return route;
  };
  const fencing = (route: Route) => route.move?.phase === 'fencing';
  const fenced = (route: Route) => route.move?.phase === 'fencing' || route.move?.phase === 'fenced';

  const call = async (tenant: string, invoke: (repositories: TenantRepositories) => unknown): Promise<unknown> => {
    const deadline = performance.now() + moveWaitMS;
    let blocked = fencing;
    let reroutes = 0;
    for (;;) {
      const route = await admitted(tenant, deadline, blocked);
      // Entering and re-checking the route run in one synchronous step: a move that starts fencing
      // either sees this call in flight (and waits for it) or this call sees the fence.
      tracker.enter(tenant);
      const now = router.cached(tenant) ?? route;
      if (fencing(now) || now.home !== route.home) {
        tracker.leave(tenant);
        continue;
      }
      try {
        return await invoke(layerOf(route.home).forTenant(tenant));
      } catch (error) {
        // The switch of a move happened after this call was admitted: the residency layer refused it
        // on the old home before anything was sent (reads go on through the fenced phase, and the
        // switch does not wait for them). Run it again where the tenant lives now.
        if (error instanceof ResidencyError && error.home !== undefined && error.home !== route.home && reroutes < 3) {
          reroutes += 1;
          continue;
        }
        // Refused before anything was sent (the residency layer runs first): run it again after the switch.
        if (!(error instanceof TenantMovingError)) throw error;
        blocked = fenced;
      } finally {
        tracker.leave(tenant);
      }
    }
  };

  const sample = layerOf(infos[0]?.name as string);
  const routed = new Map<string, TenantRepositories>();
  const forTenant = (tenantId: string): TenantRepositories => {
    const tenant = parseInput(tenantIdSchema, tenantId, 'tenantId');
    let repositories = routed.get(tenant);
    if (repositories) return repositories;
    const template = sample.forTenant(tenant) as unknown as Record<string, Record<string, unknown>>;
    const views = new Map<string, unknown>();
    repositories = new Proxy({} as TenantRepositories, {
      get(_target, key) {
        if (typeof key !== 'string' || !(key in template)) return undefined;
        let view = views.get(key);
        if (!view) {
          view = new Proxy(
            {},
            {
              get(_inner, property) {
                const value = template[key]?.[property as string];
                if (typeof value !== 'function') return value;
                return (...args: unknown[]) =>
                  call(tenant, (chosen) => {
                    const repository = (chosen as unknown as Record<string, Record<string | symbol, (...a: unknown[]) => unknown>>)[key];
                    return repository?.[property]?.(...args);
                  });
              },
            },
          );
          views.set(key, view);
        }
        return view;
      },
      has: (_target, key) => key in template,
      ownKeys: () => Reflect.ownKeys(template),
      getOwnPropertyDescriptor: (_target, key) => (key in template ? { enumerable: true, configurable: true } : undefined),
    });
    if (routed.size >= 10_000) routed.delete(routed.keys().next().value as string);
    routed.set(tenant, repositories);
    return repositories;
  };

  return {
    clusters: infos,
    forTenant,
    async clusterOf(tenantId) {
      const tenant = parseInput(tenantIdSchema, tenantId, 'tenantId');
      const { home } = await router.resolve(tenant);
      return infos.find((info) => info.name === home) as ClusterInfo;
    },
    cluster: layerOf,
    moveTenant(tenantId, toRegion, moveOptions = {}) {
      const tenant = parseInput(tenantIdSchema, tenantId, 'tenantId');
      const to = parseInput(regionName, toRegion, 'toRegion');
      if (!(to in options.regions))
        return Promise.reject(new ConfigError([{ path: 'toRegion', message: `no cluster for region ${to}`, code: 'custom' }]));
      if (dedicated.has(tenant))
        return Promise.reject(new TenantMoveError(tenant, 'start', 'the tenant has a dedicated cluster; moving it is not supported'));
      if (running.has(tenant)) return Promise.reject(new TenantMoveError(tenant, 'start', 'a move of this tenant is already running here'));
      running.add(tenant);
      return moveTenant({ tenant, to, directory, moves, router, tracker, layerOf, options: moveOptions }).finally(() =>
        running.delete(tenant),
      );
    },
    async syncIndexes() {
      await moves.syncIndexes();
      for (const layer of layers.values()) await layer.syncIndexes();
    },
  };
}
