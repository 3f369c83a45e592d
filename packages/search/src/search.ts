import {
  type AnyBulkWriteOperation,
  type CollectionCommand,
  ConfigError,
  conversationsDefinition,
  type DataLayer,
  type DataLayerPlugin,
  type Document,
  type IdInput,
  KeysetCursorCodec,
  keysetFilter,
  type Middleware,
  messagesDefinition,
  objectIdSchema,
  type Page,
  type PageSort,
  parseInput,
  type RepositoryDefinition,
  tenantIdSchema,
  usersDefinition,
  ValidationError,
} from '@caas-db/core';
import { type ZodObject, z } from 'zod';
import { PipelineRepository, type ReadPreferenceMode } from './pipeline-repository.js';
import { indexTokens, queryTokens, type TokenOptions } from './token-index.js';

/** The engines: `token` works on any MongoDB-compatible server; `text` needs `$text`; `atlas` needs Atlas Search. */
export type SearchEngine = 'token' | 'text' | 'atlas';

/** Options of {@link createSearch}. */
export interface SearchOptions {
  /** How users and conversations are searched. Messages always use their blind-index tokens. @default 'token' */
  engine?: SearchEngine;
  /** The Atlas Search index names, for the `atlas` engine. @default { users: 'users_search', conversations: 'conversations_search' } */
  atlasIndexes?: { users?: string; conversations?: string };
  /** Token extraction of the `token` engine. */
  tokens?: TokenOptions;
  /** Where searches read (e.g. `'secondaryPreferred'` to keep them off the primary). */
  readPreference?: 'primary' | 'primaryPreferred' | 'secondary' | 'secondaryPreferred' | 'nearest';
}

/** A page of results, ranked by relevance (`score`), then recency. */
export type SearchPage<T> = Page<T & { score: number }>;

/** One blind-index query: tokens derived with one key version. */
export interface BlindQuery {
  tokens: readonly string[];
  keyVersion?: number;
}

/** Filters of a message search. */
export interface MessageSearchFilters {
  conversationId?: IdInput;
  senderId?: IdInput;
  type?: 'text' | 'file' | 'image' | 'video' | 'audio' | 'system';
  from?: Date;
  to?: Date;
}

const pageSchema = z.strictObject({
  limit: z.number().int().min(1).max(100).optional(),
  cursor: z.string().max(4096).nullable().optional(),
});
const textQuerySchema = z.string().trim().min(1, 'must not be empty').max(256);
const oneBlindQuerySchema = z.strictObject({
  tokens: z
    .array(z.string().regex(/^[A-Za-z0-9_-]{8,128}$/))
    .min(1)
    .max(32),
  keyVersion: z.number().int().min(1).optional(),
});
const blindQuerySchema = z.union([oneBlindQuerySchema, z.array(oneBlindQuerySchema).min(1).max(8)]);
const messageFiltersSchema = z.strictObject({
  conversationId: objectIdSchema.optional(),
  senderId: objectIdSchema.optional(),
  type: z.enum(['text', 'file', 'image', 'video', 'audio', 'system']).optional(),
  from: z.date().optional(),
  to: z.date().optional(),
});

const parse = parseInput;

const SCORE_SORT: PageSort = { field: 'score', direction: 'desc' };

/**
 * Runs one keyset page of a search pipeline. Cursors are signed with the codec the data layer gives
 * every repository it builds, so they honour `createDataLayer({ cursorSecret })`: a cursor from
 * one instance of a service works on another, and after a restart. (A codec of the plugin's own
 * would have a random per-process secret, or a second secret option to keep in step.)
 */
class SearchRepository<S extends ZodObject> extends PipelineRepository<S> {
  async runPage(
    operation: string,
    base: Document[],
    fingerprintOf: Document,
    page: { limit: number; cursor?: string | null | undefined },
    readPreference: ReadPreferenceMode | undefined,
  ): Promise<SearchPage<Document>> {
    // Bound to the tenant, as the repositories' cursors are: one tenant's cursor is refused for another.
    const fingerprint = KeysetCursorCodec.fingerprint(`${this.name}\u0000${this.tenant ?? ''}`, fingerprintOf, SCORE_SORT);
    const after = page.cursor ? [{ $match: keysetFilter(SCORE_SORT, this.cursors.decode(page.cursor, fingerprint, SCORE_SORT)) }] : [];
    const rows = await this.run(
      operation,
      [...base, ...after, { $sort: { score: -1, _id: -1 } }, { $limit: page.limit + 1 }],
      readPreference,
    );
    const items = rows.slice(0, page.limit) as Array<Document & { score: number }>;
    const last = items.at(-1);
    return { items, nextCursor: rows.length > page.limit && last ? this.cursors.encode(fingerprint, SCORE_SORT, last) : null };
  }
}

/** The search API; bound to the ambient tenant (`runWithTenant`) or, through `forTenant`, to one. */
export interface SearchApi {
  /** Messages carrying every blind-index token of the query (pass several for a key rotation), newest first. */
  messages(
    query: BlindQuery | readonly BlindQuery[],
    filters?: MessageSearchFilters,
    page?: { limit?: number; cursor?: string | null },
  ): Promise<SearchPage<Document>>;
  /** Users by display name (words, the last one as a prefix) and by external id prefix. */
  users(query: string, page?: { limit?: number; cursor?: string | null }): Promise<SearchPage<Document>>;
  /** Conversations by name. */
  conversations(query: string, page?: { limit?: number; cursor?: string | null }): Promise<SearchPage<Document>>;
  /** The pipeline a user or conversation search would run (for review, and tests of the `atlas` engine). */
  pipelineFor(kind: 'users' | 'conversations', query: string, tenant: string): Document[];
  /** The same API bound to one tenant. */
  forTenant(tenantId: string): SearchApi;
}

/** The search plugin: keeps search tokens current on writes and answers searches. */
export interface SearchPlugin extends DataLayerPlugin, SearchApi {
  /** Recomputes the search tokens of every user and conversation of a tenant (after enabling search on existing data). */
  reindex(tenantId: string): Promise<{ users: number; conversations: number }>;
}

/**
 * One search API over messages, users and conversations, always tenant-scoped (its pipelines pass
 * the same choke point as every command) and keyset-paginated, with pluggable engines for names:
 * a token index that works everywhere, `$text`, or Atlas Search. Messages are end-to-end encrypted,
 * so they are searched by blind-index tokens only (see `createBlindIndex`).
 *
 * @example
 * ```ts
 * const search = createSearch({ engine: 'token' });
 * const data = createDataLayer({ client, plugins: [tenancy, search] });
 * const page = await search.forTenant('acme').users('ali', { limit: 20 });
 * ```
 */
export function createSearch(options: SearchOptions = {}): SearchPlugin {
  const engine = options.engine ?? 'token';
  if (!['token', 'text', 'atlas'].includes(engine))
    throw new ConfigError([{ path: 'engine', message: 'must be token, text or atlas', code: 'invalid_value' }]);
  let layer: DataLayer | undefined;
  const attached = () => {
    if (!layer)
      throw new ConfigError([{ path: 'plugins', message: 'the search plugin is not attached to a data layer yet', code: 'custom' }]);
    return layer;
  };
  const repository = <S extends ZodObject>(definition: RepositoryDefinition<S>, tenant: string | undefined) =>
    attached().repository(definition, SearchRepository<S>, tenant);

  /**
   * Keeps `search_tokens` of users and conversations in step with their names, on every write
   * command: inserts and replacements are stamped from their name; updates get the tokens next to
   * the operator that sets the name (`$set` of the name or its parent object, `$setOnInsert` of an
   * upsert) or lose them with it (`$unset`); `bulkWrite` items are handled one by one.
   */
  const derive = (command: CollectionCommand, collection: string | undefined): CollectionCommand => {
    const source =
      collection === 'users'
        ? { field: 'profile', name: 'display_name' }
        : collection === 'conversations'
          ? { field: 'metadata', name: 'name' }
          : undefined;
    if (!source) return command;
    const dotted = `${source.field}.${source.name}`;
    const tokensOf = (value: unknown) => (typeof value === 'string' ? indexTokens(value, options.tokens) : []);
    const isObject = (value: unknown): value is Document => typeof value === 'object' && value !== null && !Array.isArray(value);
    /** Whether `fields` (a document, or the operand of `$set`) names the name, and its value. */
    const nameIn = (fields: unknown): { value: unknown } | undefined => {
      if (!isObject(fields)) return undefined;
      if (Object.hasOwn(fields, dotted)) return { value: fields[dotted] };
      if (Object.hasOwn(fields, source.field))
        return { value: isObject(fields[source.field]) ? fields[source.field][source.name] : undefined };
      return undefined;
    };
    const stamp = (document: Document): Document => ({ ...document, search_tokens: tokensOf(nameIn(document)?.value) });
    const deriveUpdate = (update: Document | Document[]): Document | Document[] => {
      // A pipeline update computes the name on the server, where tokens cannot be derived: `reindex` repairs those.
      if (Array.isArray(update) || !isObject(update)) return update;
      const { $set: set, $setOnInsert: onInsert, $unset: unset } = update;
      // The tokens are derived from the name, never written by callers: a direct write would leave
      // them disagreeing with the name until a reindex.
      for (const [operator, fields] of Object.entries(update)) {
        if (!isObject(fields)) continue;
        const derivedHere = (operator === '$set' || operator === '$unset' || operator === '$setOnInsert') && nameIn(set) !== undefined;
        const written = Object.keys(fields).find((field) => field === 'search_tokens' || field.startsWith('search_tokens.'));
        if (written !== undefined && !derivedHere)
          throw new ValidationError(`${collection} update`, [
            {
              path: `${operator}.${written}`,
              message: 'is derived from the name by @caas-db/search and cannot be written directly',
              code: 'derived_field',
            },
          ]);
      }
      const named =
        nameIn(set) ??
        (isObject(unset) && (Object.hasOwn(unset, dotted) || Object.hasOwn(unset, source.field)) ? { value: undefined } : undefined);
      if (named) {
        // The tokens follow the name on insert and on update alike: none may also sit in $setOnInsert.
        const { search_tokens: _ignored, ...insertOnly } = isObject(onInsert) ? onInsert : {};
        const derived: Document = { ...update, $set: { ...(isObject(set) ? set : {}), search_tokens: tokensOf(named.value) } };
        if (isObject(onInsert)) {
          if (Object.keys(insertOnly).length > 0) derived.$setOnInsert = insertOnly;
          else delete derived.$setOnInsert;
        }
        if (isObject(unset) && Object.hasOwn(unset, 'search_tokens')) {
          const { search_tokens: _unset, ...rest } = unset;
          if (Object.keys(rest).length > 0) derived.$unset = rest;
          else delete derived.$unset;
        }
        return derived;
      }
      const inserted = nameIn(onInsert);
      if (inserted && !(isObject(set) && Object.hasOwn(set, 'search_tokens')))
        return { ...update, $setOnInsert: { ...onInsert, search_tokens: tokensOf(inserted.value) } };
      return update;
    };
    switch (command.kind) {
      case 'insertOne':
        return { ...command, document: stamp(command.document) };
      case 'insertMany':
        return { ...command, documents: command.documents.map(stamp) };
      case 'updateOne':
      case 'updateMany':
      case 'findOneAndUpdate':
        return { ...command, update: deriveUpdate(command.update) as Document };
      case 'bulkWrite':
        return {
          ...command,
          operations: command.operations.map((operation): AnyBulkWriteOperation<Document> => {
            if ('insertOne' in operation) return { insertOne: { ...operation.insertOne, document: stamp(operation.insertOne.document) } };
            if ('replaceOne' in operation)
              return { replaceOne: { ...operation.replaceOne, replacement: stamp(operation.replaceOne.replacement) } };
            if ('updateOne' in operation)
              return { updateOne: { ...operation.updateOne, update: deriveUpdate(operation.updateOne.update as Document) } };
            if ('updateMany' in operation)
              return { updateMany: { ...operation.updateMany, update: deriveUpdate(operation.updateMany.update as Document) } };
            return operation;
          }),
        };
      default:
        return command;
    }
  };
  const maintainer: Middleware = {
    name: 'search-tokens',
    phase: 'guard',
    handle(ctx, next) {
      ctx.command = derive(ctx.command, ctx.collection?.name);
      return next();
    },
  };

  /**
   * The pipeline of a name search. The query is user text: it reaches the pipeline only where a
   * string is a value (query operators, `$search` and `$text` operands) or wrapped in `$literal`
   * inside expressions, so `$external_id` or `$$ROOT` are searched for, never evaluated. `tenant` only
   * narrows Atlas Search's own filter; the data layer's scoper adds the tenant `$match` that isolates.
   */
  const namePipeline = (kind: 'users' | 'conversations', query: string, tenant: string | undefined): Document[] => {
    const path = kind === 'users' ? 'profile.display_name' : 'metadata.name';
    if (engine === 'atlas') {
      const index = options.atlasIndexes?.[kind] ?? `${kind}_search`;
      return [
        {
          $search: {
            index,
            compound: {
              // Not what isolates tenants (the scoper's $match right after $search does), but what keeps
              // Atlas from scoring every tenant's documents and mongod from fetching them for that $match.
              ...(tenant !== undefined && { filter: [{ equals: { path: 'tenant_id', value: tenant } }] }),
              should: [
                { autocomplete: { query, path } },
                { text: { query, path, fuzzy: { maxEdits: 1 } } },
                ...(kind === 'users' ? [{ text: { query, path: 'external_id', score: { boost: { value: 5 } } } }] : []),
              ],
              minimumShouldMatch: 1,
            },
            highlight: { path },
          },
        },
        { $match: { deleted_at: null } },
        { $addFields: { score: { $meta: 'searchScore' }, highlights: { $meta: 'searchHighlights' } } },
      ];
    }
    if (engine === 'text') {
      return [{ $match: { $text: { $search: query }, deleted_at: null } }, { $addFields: { score: { $meta: 'textScore' } } }];
    }
    const { required, exact } = queryTokens(query, options.tokens);
    const byTokens = { search_tokens: { $all: required } };
    const match = kind === 'users' ? { $or: [byTokens, { external_id: { $gte: query, $lt: `${query}\uffff` } }] } : byTokens;
    const relevance: Document[] = [{ $size: { $setIntersection: [{ $ifNull: ['$search_tokens', []] }, { $literal: exact }] } }];
    if (kind === 'users') relevance.push({ $cond: [{ $eq: ['$external_id', { $literal: query }] }, 10, 0] });
    return [{ $match: { ...match, deleted_at: null } }, { $addFields: { score: { $add: relevance } } }];
  };

  const paged = async (
    repo: SearchRepository<ZodObject>,
    operation: string,
    base: Document[],
    fingerprintOf: Document,
    page: unknown,
  ): Promise<SearchPage<Document>> => {
    const { limit = 20, cursor } = parse(pageSchema, page ?? {}, 'page');
    return repo.runPage(operation, base, fingerprintOf, { limit, cursor }, options.readPreference);
  };

  const api = (tenant: string | undefined): SearchApi => ({
    async messages(query, filters = {}, page = {}) {
      const queries = [parse(blindQuerySchema, query, 'query')].flat();
      const parsed = parse(messageFiltersSchema, filters, 'filters');
      const byVersion = queries.map((entry) => ({
        search_tokens: { $all: entry.tokens },
        ...(entry.keyVersion !== undefined && { search_key_version: entry.keyVersion }),
      }));
      const match: Document = { deleted_at: null, ...(byVersion.length === 1 ? byVersion[0] : { $or: byVersion }) };
      if (parsed.conversationId) match.conversation_id = parsed.conversationId;
      if (parsed.senderId) match.sender_id = parsed.senderId;
      if (parsed.type) match['content.type'] = parsed.type;
      if (parsed.from || parsed.to) match.created_at = { ...(parsed.from && { $gte: parsed.from }), ...(parsed.to && { $lt: parsed.to }) };
      const repo = repository(messagesDefinition, tenant) as unknown as SearchRepository<ZodObject>;
      // Every hit carries every token: relevance ties, so recency orders them.
      return paged(repo, 'search.messages', [{ $match: match }, { $addFields: { score: 1 } }], match, page);
    },
    async users(query, page = {}) {
      const text = parse(textQuerySchema, query, 'query');
      const repo = repository(usersDefinition(), tenant) as unknown as SearchRepository<ZodObject>;
      // The repository's tenant is the bound one, else the ambient one of this call (runWithTenant).
      return paged(repo, 'search.users', namePipeline('users', text, repo.tenant), { engine, text }, page);
    },
    async conversations(query, page = {}) {
      const text = parse(textQuerySchema, query, 'query');
      const repo = repository(conversationsDefinition, tenant) as unknown as SearchRepository<ZodObject>;
      return paged(repo, 'search.conversations', namePipeline('conversations', text, repo.tenant), { engine, text }, page);
    },
    pipelineFor: (kind, query, forTenant) => namePipeline(kind, parse(textQuerySchema, query, 'query'), forTenant),
    forTenant: (tenantId) => api(parse(tenantIdSchema, tenantId, 'tenantId')),
  });

  const unbound = api(undefined);
  return {
    name: '@caas-db/search',
    middlewares: [maintainer],
    attach(dataLayer) {
      layer = dataLayer;
    },
    ...unbound,
    async reindex(tenantId) {
      const repositories = attached().forTenant(tenantId);
      let users = 0;
      let conversations = 0;
      for (let cursor: string | null = null, first = true; first || cursor; first = false) {
        const page: Awaited<ReturnType<typeof repositories.users.findMany>> = await repositories.users.findMany({}, { limit: 200, cursor });
        for (const user of page.items) {
          await repositories.users.update(user._id, { profile: { display_name: user.profile.display_name } });
          users += 1;
        }
        cursor = page.nextCursor;
      }
      for (let cursor: string | null = null, first = true; first || cursor; first = false) {
        const page: Awaited<ReturnType<typeof repositories.conversations.findMany>> = await repositories.conversations.findMany(
          {},
          { limit: 200, cursor },
        );
        for (const conversation of page.items) {
          if (conversation.metadata.name !== undefined)
            await repositories.conversations.update(conversation._id, { metadata: { name: conversation.metadata.name } });
          conversations += 1;
        }
        cursor = page.nextCursor;
      }
      return { users, conversations };
    },
  };
}
