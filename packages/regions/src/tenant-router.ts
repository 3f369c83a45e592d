import type { DataLayer } from '@caas-db/core';
import { ResidencyError } from './errors.js';
import type { MovePhase, MoveRecord, MoveStore } from './move-store.js';

/** One cluster a regional data layer routes to. */
export interface ClusterInfo {
  /** The region name (`eu-west-1`) for a regional cluster, `dedicated:<tenant>` for a dedicated one. */
  readonly name: string;
  /** The region the cluster's data resides in. */
  readonly region: string;
  /** The tenant a dedicated cluster serves alone. */
  readonly dedicatedTo?: string;
}

/** Where a tenant's commands go now. */
export interface Route {
  /** The name of the cluster that serves the tenant. */
  readonly home: string;
  /** The tenant's move under way, if any (cluster names and phase). */
  readonly move: { readonly from: string; readonly to: string; readonly phase: MovePhase } | undefined;
}

interface Entry {
  route: Route;
  expires: number;
}

/**
 * Resolves a tenant's cluster from the directory (`clients.region`, a dedicated cluster, a move
 * under way) and keeps it for `cacheMS`, so the hot path reads a map. Moves run in this process
 * update it at once and wake the calls waiting on the tenant; other processes see a change within
 * `cacheMS` (a move waits that long after each phase change that constrains them).
 */
export class TenantRouter {
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<Route>>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Per tenant, bumped by every `set` and `invalidate`: a directory read that began before one is stale. */
  readonly #generations = new Map<string, number>();
  readonly #directory: DataLayer;
  readonly #moves: MoveStore;
  readonly #clusterOfRegion: (region: string) => string | undefined;
  readonly #dedicated: ReadonlyMap<string, ClusterInfo>;
  readonly cacheMS: number;

  constructor(options: {
    directory: DataLayer;
    moves: MoveStore;
    clusterOfRegion: (region: string) => string | undefined;
    dedicated: ReadonlyMap<string, ClusterInfo>;
    cacheMS: number;
  }) {
    this.#directory = options.directory;
    this.#moves = options.moves;
    this.#clusterOfRegion = options.clusterOfRegion;
    this.#dedicated = options.dedicated;
    this.cacheMS = options.cacheMS;
  }

  /** The route known now without asking the directory, when it has not expired. */
  cached(tenant: string): Route | undefined {
    const entry = this.#entries.get(tenant);
    return entry && entry.expires > performance.now() ? entry.route : undefined;
  }

  /** The tenant's route: cached, else read from the directory (concurrent callers share one read). */
  resolve(tenant: string): Promise<Route> {
    const cached = this.cached(tenant);
    if (cached) return Promise.resolve(cached);
    let loading = this.#loading.get(tenant);
    if (!loading) {
      const started: Promise<Route> = this.#load(tenant).finally(() => {
        if (this.#loading.get(tenant) === started) this.#loading.delete(tenant);
      });
      loading = started;
      this.#loading.set(tenant, loading);
    }
    return loading;
  }

  /** Forgets the cached route, so the next call reads the directory. */
  invalidate(tenant: string): void {
    this.#bump(tenant);
    this.#entries.delete(tenant);
  }

  #bump(tenant: string): void {
    this.#generations.set(tenant, (this.#generations.get(tenant) ?? 0) + 1);
  }

  /** Sets the route after a change made in this process and wakes the calls waiting on the tenant. */
  set(tenant: string, route: Route): void {
    this.#bump(tenant);
    // A directory read in flight began before this change: its result must not replace it.
    this.#loading.delete(tenant);
    this.#entries.set(tenant, { route, expires: performance.now() + this.cacheMS });
    const waiting = this.#waiters.get(tenant);
    this.#waiters.delete(tenant);
    for (const wake of waiting ?? []) wake();
  }

  /** Resolves when the tenant's route changes in this process, or after `cacheMS` (to re-read it). */
  changed(tenant: string): Promise<void> {
    return new Promise((resolve) => {
      let waiting = this.#waiters.get(tenant);
      if (!waiting) {
        waiting = new Set();
        this.#waiters.set(tenant, waiting);
      }
      const set = waiting;
      const timer = setTimeout(
        () => {
          set.delete(wake);
          this.invalidate(tenant);
          resolve();
        },
        Math.max(this.cacheMS, 10),
      );
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      set.add(wake);
    });
  }

  async #load(tenant: string): Promise<Route> {
    const generation = this.#generations.get(tenant) ?? 0;
    const [client, move] = await Promise.all([this.#directory.clients.findByTenantId(tenant), this.#moves.get(tenant)]);
    // A move of this process changed the route while this read was in flight: the change wins.
    if ((this.#generations.get(tenant) ?? 0) !== generation) {
      const current = this.cached(tenant);
      if (current) return current;
    }
    const route = this.routeOf(tenant, client?.region, move);
    if ((this.#generations.get(tenant) ?? 0) === generation)
      this.#entries.set(tenant, { route, expires: performance.now() + this.cacheMS });
    return route;
  }

  /** The route implied by the directory's records. */
  routeOf(tenant: string, region: string | undefined, move: MoveRecord | null): Route {
    const dedicated = this.#dedicated.get(tenant);
    if (dedicated) {
      if (region !== undefined && region !== dedicated.region)
        throw new ResidencyError(
          tenant,
          dedicated.name,
          undefined,
          `its region is ${region}, its dedicated cluster is in ${dedicated.region}`,
        );
      return { home: dedicated.name, move: undefined };
    }
    if (region === undefined) throw new ResidencyError(tenant, '(none)', undefined, 'no client record in the directory, so no region');
    const home = this.#clusterOfRegion(region);
    if (home === undefined) throw new ResidencyError(tenant, '(none)', undefined, `its region ${region} has no cluster here`);
    if (!move) return { home, move: undefined };
    // The switch writes clients.region first: a move record still short of 'switched' whose target
    // already is the tenant's region has switched.
    const phase: MovePhase = home === move.to ? 'switched' : move.phase;
    return { home, move: { from: move.from, to: move.to, phase } };
  }
}
