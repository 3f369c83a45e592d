import { createCache } from '@caas-db/cache';
import {
  createDataLayer,
  type Document,
  DuplicateKeyError,
  type Middleware,
  type MiddlewarePhase,
  messagesDefinition,
  type OperationContext,
  type OperationTrace,
  operationChannel,
  Repository,
  usersDefinition,
} from '@caas-db/core';
import { unsafeDriver } from '@caas-db/core/unsafe';
import { createSearch } from '@caas-db/search';
import { createTenancy } from '@caas-db/tenancy';
import { createTestClient, skipTest } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';

/** What the innermost layer saw of one operation. */
interface Seen {
  operation: string;
  kind: string;
  aspects: OperationContext['aspects'];
  layers: string[];
  command: Document;
}

const userPhases: MiddlewarePhase[] = ['trace', 'context', 'guard', 'effects', 'transport'];

/** One recording layer per phase open to users; the transport one keeps what it saw. */
function recorders(seen: Seen[]): Middleware[] {
  return userPhases.map((phase) => ({
    name: `record-${phase}`,
    phase,
    handle: (ctx, next) => {
      if (phase === 'transport') {
        seen.push({
          operation: ctx.operation,
          kind: ctx.command.kind,
          aspects: ctx.aspects,
          layers: [...ctx.layers],
          command: structuredClone(ctx.command) as Document,
        });
      }
      return next();
    },
  }));
}

/** A repository that can run a pipeline of its caller's (the library's own repositories build theirs). */
class PipelineRunner<S extends typeof messagesDefinition.schema> extends Repository<S> {
  run(pipeline: Document[]): Promise<Document[]> {
    return this.collection.aggregate('run', pipeline);
  }
}

describe('the middleware pipeline', () => {
  const client = createTestClient();
  const seen: Seen[] = [];
  const tenancy = createTenancy({ requireActiveTenant: false, quotas: { limits: { documents: { users: 1_000 } } } });
  const cache = createCache({ methods: { 'users.findById': { ttlMS: 60_000 } } });
  const data = createDataLayer({ client, plugins: [tenancy, cache], middlewares: recorders(seen) });
  const acme = data.forTenant('acme');

  it('runs every kind of command the library sends through every layer, in phase order, with declared aspects', async () => {
    await data.syncIndexes();
    const alice = await acme.users.create({ external_id: 'alice', profile: { display_name: 'Alice' } });
    await acme.users.createMany([{ external_id: 'bob', profile: { display_name: 'Bob' } }]);
    await acme.users.findById(alice._id);
    await acme.users.findOne({ external_id: 'alice' });
    await acme.users.findMany({}, { limit: 5 });
    await acme.users.count();
    await acme.users.exists({ external_id: 'bob' });
    await acme.users.update(alice._id, { profile: { display_name: 'Alice A.' } });
    await acme.users.findOneAndUpdate({ _id: alice._id }, { $set: { 'profile.display_name': 'Alice B.' } });
    await acme.users.bulkWrite([{ insert: { external_id: 'carol', profile: { display_name: 'Carol' } } }]);
    await acme.users.softDelete(alice._id);
    await acme.users.restore(alice._id);
    await acme.users.delete(alice._id);
    await data.repository(messagesDefinition, PipelineRunner, 'acme').run([{ $limit: 1 }]);
    await acme.users.explain({ external_id: 'bob' }).catch(() => undefined); // the server may lack explain: it was still sent
    await data.users.indexUsage();
    await data.metrics.syncIndexes();
    await data.admin.listDatabases();

    const kinds = new Set(seen.map((entry) => entry.kind));
    for (const kind of [
      'insertOne',
      'insertMany',
      'find',
      'count',
      'updateOne',
      'findOneAndUpdate',
      'bulkWrite',
      'deleteOne',
      'aggregate',
      'listIndexes',
      'createIndex',
      'explain',
      'indexStats',
      'listCollections',
      'listDatabases',
    ])
      expect(kinds, `a ${kind} command`).toContain(kind);

    // Core's tracing layer is installed only with observers (none here); every other layer sees every command.
    const layers = [
      'record-trace',
      'tenancy-context',
      'record-context',
      'tenant-scope',
      'invariants',
      'quotas',
      'record-guard',
      'cache-invalidation',
      'record-effects',
      'retry',
      'isolation-audit',
      'record-transport',
    ];
    for (const entry of seen) {
      expect(entry.layers, entry.operation).toEqual(layers);
      const read = ['find', 'count', 'distinct', 'aggregate', 'listIndexes', 'explain', 'indexStats', 'listCollections', 'listDatabases'];
      expect(entry.aspects.access, entry.operation).toBe(read.includes(entry.kind) ? 'read' : 'write');
      if (entry.aspects.access === 'read') expect(entry.aspects.idempotent, entry.operation).toBe(true);
      expect(entry.aspects.admin, entry.operation).toBe(
        [
          'listIndexes',
          'createIndex',
          'dropIndex',
          'explain',
          'indexStats',
          'listCollections',
          'createCollection',
          'listDatabases',
        ].includes(entry.kind),
      );
    }
    // Declared, not guessed: a non-idempotent $inc write and an idempotent $set by id.
    const insert = seen.find((entry) => entry.operation === 'users.create');
    expect(insert?.aspects).toMatchObject({ access: 'write', idempotent: false, tenantScoped: true, admin: false });
  });

  it('scopes each command exactly once, and the wire command carries one tenant predicate per level', async () => {
    const wire: Document[] = [];
    const listener = (event: { commandName: string; command: Document }) => {
      if (event.commandName === 'aggregate' && event.command.aggregate === 'messages') wire.push(event.command);
    };
    unsafeDriver(client).on('commandStarted', listener);
    try {
      seen.length = 0;
      await data.repository(messagesDefinition, PipelineRunner, 'acme').run([{ $match: { status: 'sent' } }, { $limit: 1 }]);
      await acme.users.findOne({ external_id: 'bob' });
    } finally {
      unsafeDriver(client).off('commandStarted', listener);
    }
    for (const entry of seen) expect(entry.layers.filter((layer) => layer === 'tenant-scope')).toHaveLength(1);
    expect(wire).toHaveLength(1);
    expect(wire[0]?.pipeline).toEqual([{ $match: { tenant_id: 'acme', status: 'sent' } }, { $limit: 1 }]);
  });

  it('builds $search and $geoNear pipelines in tenant scope with the stage first', async () => {
    seen.length = 0;
    const runner = data.repository(messagesDefinition, PipelineRunner, 'acme');
    await runner.run([{ $search: { index: 'default', text: { query: 'hi', path: 'x' } } }, { $limit: 5 }]).catch(() => undefined);
    await runner.run([{ $geoNear: { near: { type: 'Point', coordinates: [0, 0] }, distanceField: 'd' } }]).catch(() => undefined);
    const [search, geo] = seen.filter((entry) => entry.kind === 'aggregate').map((entry) => entry.command.pipeline as Document[]);
    expect(search).toEqual([
      { $search: { index: 'default', text: { query: 'hi', path: 'x' } } },
      { $match: { tenant_id: 'acme' } },
      { $limit: 5 },
    ]);
    expect(geo).toEqual([{ $geoNear: { near: { type: 'Point', coordinates: [0, 0] }, distanceField: 'd', query: { tenant_id: 'acme' } } }]);
  });

  it('sends the search package’s Atlas $search pipeline with the tenant $match right after the stage', async () => {
    const atlasSeen: Seen[] = [];
    const search = createSearch({ engine: 'atlas' });
    const atlas = createDataLayer({ client, plugins: [tenancy, search], middlewares: recorders(atlasSeen) });
    atlas.forTenant('acme'); // attach
    await search
      .forTenant('acme')
      .users('ali', { limit: 1 })
      .catch(() => undefined); // the server has no Atlas Search: what matters is what was sent
    const sent = atlasSeen.find((entry) => entry.kind === 'aggregate' && entry.operation.startsWith('users.'));
    const pipeline = sent?.command.pipeline as Document[];
    expect(Object.keys(pipeline[0] ?? {})).toEqual(['$search']);
    expect(pipeline[1]).toEqual({ $match: { tenant_id: 'acme' } });
    expect(sent?.layers.filter((layer) => layer === 'tenant-scope')).toHaveLength(1);
  });
});

describe('unwinding: a refusal by the innermost layer leaves every outer layer as it was', () => {
  const client = createTestClient();
  const tenancy = createTenancy({ requireActiveTenant: false, quotas: { limits: { documents: { users: 10 } } } });
  const cache = createCache({ methods: { 'users.findById': { ttlMS: 60_000 } } });
  let refuse = false;
  const refuser: Middleware = {
    name: 'refuse-users-writes',
    phase: 'transport',
    handle: (ctx, next) => {
      if (refuse && ctx.collection?.name === 'users' && ctx.aspects.access === 'write') throw new Error('refused by the innermost layer');
      return next();
    },
  };
  const data = createDataLayer({ client, plugins: [tenancy, cache], middlewares: [refuser] });
  const acme = data.forTenant('acme');

  it('keeps quota counters, cache entries and cache events exactly as before', async () => {
    const kept = await acme.users.create({ external_id: 'kept', profile: { display_name: 'Kept' } });
    await acme.users.findById(kept._id); // cached now
    const usageBefore = await tenancy.usage?.usageOf('acme');
    const events: string[] = [];
    // The quota layer's own reserve and release of tenant_usage are writes too: only users' tags count.
    const off = cache.on('cache:invalidate', (event) =>
      events.push(...event.tags.filter((tag) => tag.includes('users') && !tag.includes('tenant_usage'))),
    );
    refuse = true;
    const outcomes = await Promise.allSettled([
      acme.users.create({ external_id: 'a', profile: { display_name: 'A' } }),
      acme.users.create({ external_id: 'b', profile: { display_name: 'B' } }),
      acme.users.create({ external_id: 'c', profile: { display_name: 'C' } }),
      acme.users.update(kept._id, { profile: { display_name: 'Changed' } }),
      acme.users.delete(kept._id),
    ]);
    refuse = false;
    off();
    expect(outcomes.every((outcome) => outcome.status === 'rejected')).toBe(true);
    expect(await tenancy.usage?.usageOf('acme')).toEqual(usageBefore);
    expect(usageBefore?.users?.documents).toBe(1);
    expect(await acme.users.count()).toBe(1);
    expect(events).toEqual([]);
    expect((await acme.users.findById(kept._id))?.profile.display_name).toBe('Kept');
  });
});

describe('the geoNear stage on the server', () => {
  const client = createTestClient();
  const data = createDataLayer({ client });

  it('runs a tenant-scoped $geoNear where the server has it', async (context) => {
    const definition = {
      ...usersDefinition({}),
      collection: 'places',
      indexes: [{ name: 'location_2dsphere', key: { location: '2dsphere' as const }, purpose: '$geoNear' }],
      queries: [],
    };
    const places = data.repository(definition, PipelineRunner as never, 'acme') as unknown as PipelineRunner<never>;
    await places.syncIndexes();
    const geo = [{ $geoNear: { near: { type: 'Point', coordinates: [0, 0] }, distanceField: 'd', spherical: true } }];
    const result = await places.run(geo).catch((error: unknown) => error);
    if (result instanceof Error) skipTest(context, `the server has no $geoNear over a 2dsphere index: ${result.message.slice(0, 80)}`);
    expect(result).toEqual([]);
  });
});

describe('the caas-db:operation tracing channel', () => {
  const client = createTestClient();

  it('traces every operation with its name, kind, aspects and outcome; the tenant only when asked', async () => {
    await createDataLayer({ client }).users.syncIndexes(); // external_id is unique per tenant
    const started: OperationTrace[] = [];
    const ended: OperationTrace[] = [];
    const handlers = {
      start: (trace: OperationTrace) => started.push(trace),
      asyncEnd: (trace: OperationTrace) => ended.push(trace),
    };
    operationChannel.subscribe(handlers as never);
    try {
      const plain = createDataLayer({ client });
      await plain.forTenant('acme').users.create({ external_id: 'traced', profile: { display_name: 'T' } });
      const withTenant = createDataLayer({ client, tracing: { tenant: true } });
      await withTenant.forTenant('acme').users.findByExternalId('traced');
      await withTenant
        .forTenant('acme')
        .users.create({ external_id: 'traced', profile: { display_name: 'again' } })
        .catch(() => undefined);
    } finally {
      operationChannel.unsubscribe(handlers as never);
    }
    expect(started.map((trace) => trace.operation)).toEqual(['users.create', 'users.findOne', 'users.create']);
    expect(started[0]).toMatchObject({ kind: 'insertOne', collection: 'users', aspects: { access: 'write', idempotent: false } });
    expect('tenant' in (started[0] ?? {})).toBe(false);
    expect(started[1]?.tenant).toBe('acme');
    expect(ended).toHaveLength(3);
    expect(ended[2]?.error).toBeInstanceOf(DuplicateKeyError);
  });
});
