import {
  type DataLayer,
  type Document,
  type ObjectId,
  objectIdSchema,
  parseConfig,
  type RepositoryDefinition,
  type TenantRepositories,
} from '@caas-db/core';
import { z } from 'zod';

/** The kinds of drift `verifyTenants` looks for. */
export const driftKinds = ['schema', 'reply_count', 'last_message', 'participants', 'quota_usage', 'rollups'] as const;

/** One kind of drift. */
export type DriftKind = (typeof driftKinds)[number];

/** One drifted thing, and whether `repair` fixed it. */
export interface Drift {
  kind: DriftKind;
  /** What drifted: `messages/<id>`, `conversations/<id>`, `tenant_usage/messages`, `rollups/<day>/<key>`. */
  subject: string;
  /** What is wrong, in words. */
  detail: string;
  /** Whether a repair exists for it (schema drift needs a migration: reported only). */
  repairable: boolean;
  /** With `repair`: true once fixed. */
  repaired?: boolean;
}

/** The verification of one tenant. */
export interface TenantVerification {
  tenant: string;
  /** Documents whose schema was checked. */
  scanned: number;
  drift: Drift[];
}

/** The quota counters' check and repair (`tenancy.usage` of `@caas-db/tenancy`). */
export interface UsageVerifier {
  verify(data: DataLayer, tenant: string): Promise<Array<{ collection: string; consistent: boolean; recorded: unknown; counted: unknown }>>;
  repair(data: DataLayer, tenant: string): Promise<Array<{ collection: string; consistent: boolean; repaired?: boolean }>>;
}

/** The rollups' check and repair (`createAnalytics(data)` of `@caas-db/search`). */
export interface RollupVerifier {
  forTenant(tenant: string): {
    verifyDay(day: string, options?: { repair?: boolean }): Promise<Array<{ kind: string; period: string; key: string }>>;
  };
}

/** Options of {@link verifyTenants}. */
export interface VerifyOptions {
  data: DataLayer;
  tenants: readonly string[];
  /** Fix what can be fixed (everything but schema drift). @default false */
  repair?: boolean;
  /** Only these kinds. @default all */
  kinds?: readonly DriftKind[];
  /** Quota counters to check (`tenancy.usage`); skipped when absent. */
  usage?: UsageVerifier;
  /** Rollups to check; skipped when absent. */
  rollups?: RollupVerifier;
  /** Days (`YYYY-MM-DD`) whose rollups are checked. @default today and the six days before (UTC) */
  days?: readonly string[];
  /** Called after each tenant. */
  onTenant?: (verification: TenantVerification, index: number, total: number) => void;
  signal?: AbortSignal;
}

const optionsSchema = z.strictObject({
  data: z.custom<DataLayer>((value) => typeof value === 'object' && value !== null && 'forTenant' in value, 'must be a DataLayer'),
  tenants: z.array(z.string().min(1).max(64)),
  repair: z.boolean().optional(),
  kinds: z.array(z.enum(driftKinds)).optional(),
  usage: z.custom<UsageVerifier>((value) => typeof value === 'object' && value !== null && 'verify' in value).optional(),
  rollups: z.custom<RollupVerifier>((value) => typeof value === 'object' && value !== null && 'forTenant' in value).optional(),
  days: z.array(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'must be YYYY-MM-DD')).optional(),
  onTenant: z.custom<VerifyOptions['onTenant']>((value) => typeof value === 'function').optional(),
  signal: z.custom<AbortSignal>((value) => value instanceof AbortSignal).optional(),
});

/** The tenant-owned repositories whose documents the schema scan reads. */
const SCANNED = ['users', 'conversations', 'messages', 'files', 'groups', 'settings'] as const;

type Scannable = {
  definition: RepositoryDefinition<z.ZodObject>;
  findMany(filter: Document, options: Document): Promise<{ items: Document[]; nextCursor: string | null }>;
};

/** Every document of a repository, a page at a time (soft-deleted ones included). */
async function* documentsOf(repository: Scannable, filter: Document = {}): AsyncGenerator<Document> {
  let cursor: string | null = null;
  do {
    const page: { items: Document[]; nextCursor: string | null } = await repository.findMany(filter, {
      limit: 500,
      includeDeleted: true,
      sort: { field: '_id', direction: 'asc' },
      ...(cursor && { cursor }),
    });
    yield* page.items;
    cursor = page.nextCursor;
  } while (cursor);
}

/** The schema of a whole stored document of `definition` (domain fields plus system fields). */
function storedSchemaOf(definition: RepositoryDefinition<z.ZodObject>): z.ZodObject {
  return definition.schema.extend({
    _id: objectIdSchema,
    schema_version: z.number().int().min(1),
    created_at: z.date(),
    updated_at: z.date(),
    ...(definition.softDelete && { deleted_at: z.date().nullable() }),
    ...(definition.versioned && { version: z.number().int().min(1) }),
  });
}

async function schemaDrift(repositories: TenantRepositories, drift: Drift[]): Promise<number> {
  let scanned = 0;
  for (const name of SCANNED) {
    const repository = repositories[name] as unknown as Scannable;
    const schema = storedSchemaOf(repository.definition);
    for await (const document of documentsOf(repository)) {
      scanned += 1;
      const result = schema.safeParse(document);
      if (result.success) continue;
      const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
      drift.push({
        kind: 'schema',
        subject: `${repository.definition.collection}/${String(document._id)}`,
        detail: issues,
        repairable: false,
      });
    }
  }
  return scanned;
}

async function replyCountDrift(repositories: TenantRepositories, repair: boolean, drift: Drift[]): Promise<void> {
  const messages = repositories.messages as unknown as Scannable;
  const actual = new Map<string, number>();
  for await (const reply of documentsOf(messages, { 'thread.parent_id': { $exists: true } })) {
    if (reply.deleted_at) continue;
    const parent = String(reply.thread.parent_id);
    actual.set(parent, (actual.get(parent) ?? 0) + 1);
  }
  const stored = new Map<string, number>();
  for await (const parent of documentsOf(messages, { 'thread.reply_count': { $gt: 0 } })) {
    stored.set(String(parent._id), parent.thread.reply_count as number);
  }
  for (const id of new Set([...actual.keys(), ...stored.keys()])) {
    const counted = actual.get(id) ?? 0;
    const recorded = stored.get(id) ?? 0;
    if (counted === recorded) continue;
    const entry: Drift = {
      kind: 'reply_count',
      subject: `messages/${id}`,
      detail: `reply_count is ${recorded}, ${counted} live replies`,
      repairable: true,
    };
    if (repair) {
      const exists = await repositories.messages.findById(id, { projection: { _id: 1 } });
      entry.repaired = exists !== null && (await repositories.messages.recountReplies(id)).actual === counted;
    }
    drift.push(entry);
  }
}

async function conversationDrift(
  repositories: TenantRepositories,
  tenant: string,
  kinds: ReadonlySet<DriftKind>,
  repair: boolean,
  drift: Drift[],
): Promise<void> {
  const conversations = repositories.conversations as unknown as Scannable;
  const users = repositories.users as unknown as Scannable;
  const participantIds = new Map<string, ObjectId>();
  for await (const conversation of documentsOf(conversations)) {
    if (kinds.has('last_message') && !conversation.deleted_at) {
      const newest = (await repositories.messages.findByConversation(conversation._id, { limit: 1 })).items[0];
      const recorded = conversation.last_message?.message_id as ObjectId | undefined;
      if (String(newest?._id) !== String(recorded)) {
        const entry: Drift = {
          kind: 'last_message',
          subject: `conversations/${String(conversation._id)}`,
          detail: `last_message is ${recorded ? String(recorded) : 'unset'}, newest live message ${newest ? String(newest._id) : 'none'}`,
          repairable: true,
        };
        if (repair) {
          await repositories.messages.verifyLastMessage(conversation._id);
          entry.repaired = true;
        }
        drift.push(entry);
      }
    }
    for (const participant of conversation.participants ?? []) {
      participantIds.set(String(participant.user_id), participant.user_id);
    }
  }
  if (!kinds.has('participants')) return;
  const ids = [...participantIds.values()];
  const known = new Set<string>();
  for (let start = 0; start < ids.length; start += 500) {
    for await (const user of documentsOf(users, { _id: { $in: ids.slice(start, start + 500) } })) known.add(String(user._id));
  }
  for (const id of ids) {
    if (known.has(String(id))) continue;
    const entry: Drift = {
      kind: 'participants',
      subject: `users/${String(id)}`,
      detail: 'is a participant of conversations but no such user exists',
      repairable: true,
    };
    if (repair) {
      await repositories.conversations.removeParticipantEverywhere(id, tenant);
      entry.repaired = true;
    }
    drift.push(entry);
  }
}

/**
 * Document counters are exact; byte counters are approximate by design (an update that grows a
 * document is not re-measured, see docs/multi-tenancy.md), so bytes count as drift only when more
 * than 10% off.
 */
function usageDrifted(recorded: unknown, counted: unknown): boolean {
  const a = (recorded ?? {}) as { documents?: number; bytes?: number };
  const b = (counted ?? {}) as { documents?: number; bytes?: number };
  if ((a.documents ?? 0) !== (b.documents ?? 0)) return true;
  const bytes = Math.max(a.bytes ?? 0, b.bytes ?? 0);
  return bytes > 0 && Math.abs((a.bytes ?? 0) - (b.bytes ?? 0)) / bytes > 0.1;
}

function lastWeek(): string[] {
  const today = Date.now();
  return Array.from({ length: 7 }, (_, back) => new Date(today - back * 86_400_000).toISOString().slice(0, 10));
}

/**
 * Checks each tenant's stored documents against the models' schemas and the denormalized
 * invariants (thread reply counts, conversations' `last_message`, participants that exist, quota
 * counters, analytics rollups) and reports drift per tenant; with `repair`, fixes everything but
 * schema drift (which needs a migration) through the models' own repair methods.
 * @throws {ConfigError} for invalid options; nothing is read.
 */
export async function verifyTenants(options: VerifyOptions): Promise<TenantVerification[]> {
  parseConfig(optionsSchema, options);
  const kinds = new Set<DriftKind>(options.kinds ?? driftKinds);
  const repair = options.repair ?? false;
  const results: TenantVerification[] = [];
  for (const [index, tenant] of options.tenants.entries()) {
    if (options.signal?.aborted) break;
    const repositories = options.data.forTenant(tenant);
    const drift: Drift[] = [];
    const scanned = kinds.has('schema') ? await schemaDrift(repositories, drift) : 0;
    if (kinds.has('reply_count')) await replyCountDrift(repositories, repair, drift);
    if (kinds.has('last_message') || kinds.has('participants')) await conversationDrift(repositories, tenant, kinds, repair, drift);
    if (kinds.has('quota_usage') && options.usage) {
      const checks = await options.usage.verify(options.data, tenant);
      const drifted = checks.filter((check) => usageDrifted(check.recorded, check.counted));
      const repaired = repair && drifted.length > 0 ? await options.usage.repair(options.data, tenant) : [];
      for (const check of drifted) {
        drift.push({
          kind: 'quota_usage',
          subject: `tenant_usage/${check.collection}`,
          detail: `recorded ${JSON.stringify(check.recorded)}, counted ${JSON.stringify(check.counted)}`,
          repairable: true,
          ...(repair && { repaired: repaired.find((entry) => entry.collection === check.collection)?.repaired === true }),
        });
      }
    }
    if (kinds.has('rollups') && options.rollups) {
      const analytics = options.rollups.forTenant(tenant);
      for (const day of options.days ?? lastWeek()) {
        for (const entry of await analytics.verifyDay(day, { repair })) {
          drift.push({
            kind: 'rollups',
            subject: `rollups/${entry.period}/${entry.kind}/${entry.key}`,
            detail: 'stored rollup differs from the recomputation',
            repairable: true,
            ...(repair && { repaired: true }),
          });
        }
      }
    }
    const verification = { tenant, scanned, drift };
    results.push(verification);
    options.onTenant?.(verification, index, options.tenants.length);
  }
  return results;
}
