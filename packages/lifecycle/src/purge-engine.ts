import { ConfigError, type Document, type ObjectId, parseInput, TypedEmitter, tenantIdSchema } from '@caas-db/core';
import { z } from 'zod';
import { DAY_MS } from './clock.js';
import type { Actor, LifecycleContext } from './context.js';
import { LegalHoldError } from './errors.js';
import type { ActiveHolds, LegalHolds } from './holds.js';
import { messageRuleFor, type RetentionPolicies } from './policies.js';
import type { DocumentRateLimiter } from './rate-limiter.js';

/** The rules a purge applies. */
export const purgeRules = ['messages', 'deletedContent', 'events', 'fileShares', 'metrics'] as const;
/** One rule of a purge. */
export type PurgeRule = (typeof purgeRules)[number];

/** What one purge run did (or, dry, would do). */
export interface PurgeReport {
  tenant: string;
  dryRun: boolean;
  /** Documents removed (messages, events, metrics), content purged (deletedContent) or shares expired, per rule. */
  counts: Record<PurgeRule, number>;
  /** Conversations skipped because a hold covers them. */
  heldConversations: number;
  /** The conversation the run resumed after, when a checkpoint of an interrupted run was found. */
  resumedAfter: string | null;
  /** The rules that resumed from a checkpoint of an interrupted run (per tenant and collection). */
  resumed: PurgeRule[];
}

/** A progress event of a purge. */
export interface PurgeProgress {
  tenant: string;
  rule: PurgeRule;
  /** Documents done so far in this rule. */
  processed: number;
  /** The last conversation (messages rules) or metric name (metrics) finished; a rerun resumes after it. */
  position: string | null;
  dryRun: boolean;
}

/** Events of the purge engine. */
export interface PurgeEvents {
  progress: PurgeProgress;
}

const purgeOptionsSchema = z.strictObject({
  dryRun: z.boolean().optional(),
  rules: z.array(z.enum(purgeRules)).min(1).optional(),
  actor: z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: z.string().min(1).max(128) }).optional(),
});

/** Options of one purge run. */
export interface PurgeOptions {
  /** Count what would be removed; write nothing (but the audit entry). */
  dryRun?: boolean;
  /** The rules to apply. @default every rule */
  rules?: PurgeRule[];
  /** Who runs it, for the audit entry. @default { type: 'system', id: 'lifecycle' } */
  actor?: Actor;
}

/** Receives the documents a rule is about to remove, when the policy archives them. */
export type Archiver = (tenant: string, collection: string, documents: Document[]) => Promise<void>;

/**
 * Applies a tenant's retention policy: removes expired messages (per conversation, its override or
 * its type's rule over the tenant's), purges the content of soft-deleted messages past their grace
 * (a tombstone stays), removes expired events and expires file shares. Batched (`batchSize`),
 * keyset by `_id` over the tenant's conversations with a checkpoint after each one (a rerun after
 * a crash resumes there), paced by a per-tenant documents/s limit, with progress events and an
 * audit entry per run. Held conversations, held users' documents and held tenants are never touched.
 */
export class PurgeEngine {
  readonly #context: LifecycleContext;
  readonly #policies: RetentionPolicies;
  readonly #holds: LegalHolds;
  readonly #batchSize: number;
  readonly #limiter: DocumentRateLimiter | undefined;
  readonly #events = new TypedEmitter<PurgeEvents>();
  /** Set by the archive integration: called with each batch before it is removed, when the policy says so. */
  archiver: Archiver | undefined;

  constructor(context: LifecycleContext, policies: RetentionPolicies, holds: LegalHolds, batchSize: number, limiter?: DocumentRateLimiter) {
    this.#context = context;
    this.#policies = policies;
    this.#holds = holds;
    this.#batchSize = batchSize;
    this.#limiter = limiter;
  }

  /** Subscribes to progress events. @returns a function that unsubscribes. */
  on<Name extends keyof PurgeEvents>(event: Name, listener: (data: PurgeEvents[Name]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Runs the tenant's policy once.
   * @throws {LegalHoldError} when a hold covers the whole tenant (nothing is touched; the refusal is audit-logged).
   */
  async run(tenant: string, options: PurgeOptions = {}): Promise<PurgeReport> {
    const tenantId = parseInput(tenantIdSchema, tenant, 'tenant');
    // One run per tenant at a time on this instance: two runs would move one checkpoint back and
    // forth. (Across instances, schedule a tenant's purge on one instance at a time.)
    const previous = this.#running.get(tenantId) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(() => this.#run(tenantId, options));
    const settled = current.catch(() => undefined);
    this.#running.set(tenantId, settled);
    void settled.then(() => {
      if (this.#running.get(tenantId) === settled) this.#running.delete(tenantId);
    });
    return current;
  }

  readonly #running = new Map<string, Promise<unknown>>();

  async #run(tenantId: string, options: PurgeOptions): Promise<PurgeReport> {
    const parsed = parseInput(purgeOptionsSchema, options, 'options');
    const dryRun = parsed.dryRun ?? false;
    const rules = new Set(parsed.rules ?? purgeRules);
    const actor = parsed.actor ?? { type: 'system' as const, id: 'lifecycle' };
    const holds = await this.#holds.active(tenantId);
    if (holds.tenant) {
      await this.#context.audit(
        tenantId,
        'lifecycle.purge_refused',
        actor,
        { collection: 'legal_holds', id: holds.tenant.id },
        { dry_run: dryRun },
      );
      throw new LegalHoldError('purge', holds.tenant);
    }
    const report: PurgeReport = {
      tenant: tenantId,
      dryRun,
      counts: { messages: 0, deletedContent: 0, events: 0, fileShares: 0, metrics: 0 },
      heldConversations: 0,
      resumedAfter: null,
      resumed: [],
    };
    if (rules.has('messages') || rules.has('deletedContent')) await this.#messages(tenantId, holds, rules, dryRun, report);
    if (rules.has('events')) await this.#eventsRule(tenantId, holds, dryRun, report);
    if (rules.has('fileShares')) await this.#fileShares(tenantId, holds, dryRun, report);
    if (rules.has('metrics')) await this.#metricsRule(tenantId, dryRun, report);
    await this.#context.audit(
      tenantId,
      'lifecycle.purge',
      actor,
      { collection: 'messages' },
      {
        dry_run: dryRun,
        counts: report.counts,
        held_conversations: report.heldConversations,
        resumed: report.resumedAfter !== null,
      },
    );
    return report;
  }

  async #messages(tenant: string, holds: ActiveHolds, rules: Set<PurgeRule>, dryRun: boolean, report: PurgeReport): Promise<void> {
    const policy = await this.#policies.get(tenant);
    const overrides = await this.#policies.conversationOverrides(tenant);
    const conversations = this.#context.access(tenant, 'conversations');
    const checkpoints = this.#context.access(tenant, 'lifecycle_checkpoints');
    const task = 'purge:messages';
    // A dry run never moves the checkpoint: it must not make a real run skip conversations.
    const [checkpoint] = dryRun ? [] : await checkpoints.rawFind('checkpoint.read', { tenant_id: tenant, task }, { limit: 1 });
    let position = (checkpoint?.position as ObjectId | null | undefined) ?? null;
    report.resumedAfter = position ? position.toHexString() : null;
    if (position) report.resumed.push('messages');
    const now = this.#context.clock().getTime();
    const heldSenders = holds.userIds;
    for (;;) {
      const page = await conversations.rawFind(
        'lifecycle.conversations',
        { tenant_id: tenant, ...(position && { _id: { $gt: position } }) },
        { sort: { _id: 1 }, limit: 100, projection: { _id: 1, type: 1 } },
      );
      if (page.length === 0) break;
      for (const conversation of page) {
        const id = conversation._id as ObjectId;
        if (holds.conversations.has(id.toHexString())) {
          report.heldConversations += 1;
        } else {
          const rule = messageRuleFor(policy, conversation.type as string, overrides.get(id.toHexString()));
          if (rules.has('messages') && rule.keepDays !== null) {
            const cutoff = new Date(now - rule.keepDays * DAY_MS);
            const filter = {
              tenant_id: tenant,
              conversation_id: id,
              created_at: { $lt: cutoff },
              ...(heldSenders.length > 0 && { sender_id: { $nin: heldSenders } }),
            };
            await this.#removeInBatches(tenant, 'messages', filter, { created_at: 1, _id: 1 }, dryRun, rule.archive, report, 'messages');
          }
          if (rules.has('deletedContent') && rule.deletedContentGraceDays !== null) {
            const cutoff = new Date(now - rule.deletedContentGraceDays * DAY_MS);
            // Messages the messages rule removes in this run are not counted (or touched) twice.
            const expiresBefore = rules.has('messages') && rule.keepDays !== null ? new Date(now - rule.keepDays * DAY_MS) : undefined;
            await this.#purgeContent(tenant, id, cutoff, expiresBefore, heldSenders, dryRun, report);
          }
          // Always, not only when this run removed something: a run that crashed between its deletes
          // and this repair resumes after the previous conversation and finds nothing left to remove.
          if (rules.has('messages') && rule.keepDays !== null && !dryRun)
            await this.#context.data.forTenant(tenant).messages.verifyLastMessage(id);
        }
        position = id;
        if (!dryRun)
          await checkpoints.rawUpsert(
            'checkpoint.write',
            { tenant_id: tenant, task },
            {
              $set: {
                position,
                run_id: 'messages',
                processed: report.counts.messages + report.counts.deletedContent,
                updated_at: this.#context.clock(),
              },
              $setOnInsert: { created_at: this.#context.clock(), schema_version: 1 },
            },
          );
        // After the checkpoint: a listener that sees this position knows a rerun resumes after it.
        this.#events.emit('progress', {
          tenant,
          rule: 'messages',
          processed: report.counts.messages,
          position: id.toHexString(),
          dryRun,
        });
      }
    }
    if (!dryRun) await checkpoints.rawDeleteMany('checkpoint.clear', { tenant_id: tenant, task });
  }

  /** Removes (or counts) the documents of `filter`, oldest first, a batch at a time. */
  async #removeInBatches(
    tenant: string,
    collection: 'messages' | 'events',
    filter: Document,
    sort: Document,
    dryRun: boolean,
    archive: boolean,
    report: PurgeReport,
    rule: PurgeRule,
    checkpointTask?: string,
  ): Promise<number> {
    const access = this.#context.access(tenant, collection);
    if (dryRun) {
      const count = await access.rawCount(`lifecycle.${rule} (dry run)`, filter);
      report.counts[rule] += count;
      return count;
    }
    const [timeField] = Object.keys(sort) as [string];
    const checkpoints = this.#context.access(tenant, 'lifecycle_checkpoints');
    // A collection-wide rule keeps its own keyset position (the last document removed, in sort
    // order): a rerun after a crash starts after it instead of at the beginning.
    const [checkpoint] = checkpointTask
      ? await checkpoints.rawFind('checkpoint.read', { tenant_id: tenant, task: checkpointTask }, { limit: 1 })
      : [];
    let after = checkpoint?.state as Document | undefined;
    if (after) report.resumed.push(rule);
    const afterFilter = (position: Document) => ({
      $or: [{ [timeField]: { $gt: position.at } }, { [timeField]: position.at, _id: { $gt: position.id } }],
    });
    let removed = 0;
    for (;;) {
      const batch = await access.rawFind(`lifecycle.${rule}`, after ? { $and: [filter, afterFilter(after)] } : filter, {
        sort,
        limit: this.#batchSize,
        ...(!archive && { projection: { _id: 1, [Object.keys(sort)[0] as string]: 1 } }),
      });
      if (batch.length === 0) break;
      await this.#limiter?.take(tenant, batch.length);
      if (archive) {
        if (!this.archiver)
          throw new ConfigError([
            { path: 'archive', message: 'the policy archives before purge, but the lifecycle has no archive target', code: 'custom' },
          ]);
        await this.archiver(tenant, collection, batch);
      }
      // Archived batches are deleted by id: exactly what was archived. Otherwise by keyset range up to
      // the batch's last document (one index range instead of a list of ids; a document expired
      // meanwhile that sorts inside the range goes too, as the policy wants).
      const last = batch[batch.length - 1] as Document;
      const upToLast = {
        $and: [
          filter,
          { $or: [{ [timeField]: { $lt: last[timeField] } }, { [timeField]: last[timeField], _id: { $lte: last._id } }] },
          ...(after ? [afterFilter(after)] : []),
        ],
      };
      const deleted = await access.rawDeleteMany(
        `lifecycle.${rule} (delete)`,
        archive ? { _id: { $in: batch.map((document) => document._id) } } : upToLast,
      );
      removed += deleted;
      report.counts[rule] += deleted;
      after = { at: last[timeField], id: last._id };
      if (checkpointTask)
        await checkpoints.rawUpsert(
          'checkpoint.write',
          { tenant_id: tenant, task: checkpointTask },
          {
            $set: { position: last._id, run_id: rule, state: after, processed: report.counts[rule], updated_at: this.#context.clock() },
            $setOnInsert: { created_at: this.#context.clock(), schema_version: 1 },
          },
        );
      // After the checkpoint: a listener that sees this batch knows a rerun resumes after it.
      this.#events.emit('progress', { tenant, rule, processed: report.counts[rule], position: null, dryRun });
      if (batch.length < this.#batchSize) break;
    }
    if (checkpointTask) await checkpoints.rawDeleteMany('checkpoint.clear', { tenant_id: tenant, task: checkpointTask });
    return removed;
  }

  /** Removes ciphertext, keys, preview and search tokens of soft-deleted messages past the grace period; the tombstone stays. */
  async #purgeContent(
    tenant: string,
    conversationId: ObjectId,
    cutoff: Date,
    expiresBefore: Date | undefined,
    heldSenders: ObjectId[],
    dryRun: boolean,
    report: PurgeReport,
  ): Promise<void> {
    const access = this.#context.access(tenant, 'messages');
    const base = {
      tenant_id: tenant,
      conversation_id: conversationId,
      deleted_at: { $lt: cutoff },
      'content.encrypted_data': { $exists: true },
      ...(expiresBefore && { created_at: { $gte: expiresBefore } }),
      ...(heldSenders.length > 0 && { sender_id: { $nin: heldSenders } }),
    };
    if (dryRun) {
      report.counts.deletedContent += await access.rawCount('lifecycle.deletedContent (dry run)', base);
      return;
    }
    let after: ObjectId | undefined;
    for (;;) {
      const batch = await access.rawFind('lifecycle.deletedContent', after ? { ...base, _id: { $gt: after } } : base, {
        sort: { _id: 1 },
        limit: this.#batchSize,
        projection: { _id: 1 },
      });
      if (batch.length === 0) break;
      await this.#limiter?.take(tenant, batch.length);
      const changed = await access.rawUpdateMany(
        'lifecycle.deletedContent (tombstone)',
        { _id: { $in: batch.map((document) => document._id) }, deleted_at: { $lt: cutoff } },
        tombstoneUpdate(),
      );
      report.counts.deletedContent += changed;
      after = batch[batch.length - 1]?._id as ObjectId;
      this.#events.emit('progress', {
        tenant,
        rule: 'deletedContent',
        processed: report.counts.deletedContent,
        position: conversationId.toHexString(),
        dryRun,
      });
      if (batch.length < this.#batchSize) break;
    }
  }

  async #eventsRule(tenant: string, holds: ActiveHolds, dryRun: boolean, report: PurgeReport): Promise<void> {
    if (!dryRun && (holds.userIds.length > 0 || holds.conversationIds.length > 0))
      // The TTL path: an instance whose cached view of the holds predates a new hold may have
      // stamped expire_at on a held event after the hold took the stamps off. Each run takes them
      // off again, long before they fall due (a stamp is keepDays days ahead of its event).
      await this.#context.access(tenant, 'events').rawUpdateMany(
        'lifecycle.events (unstamp held)',
        {
          tenant_id: tenant,
          expire_at: { $exists: true },
          $or: [
            ...(holds.userIds.length > 0 ? [{ user_id: { $in: holds.userIds } }] : []),
            ...(holds.conversationIds.length > 0 ? [{ conversation_id: { $in: holds.conversationIds } }] : []),
          ],
        },
        { $unset: { expire_at: '' } },
      );
    const { keepDays } = (await this.#policies.get(tenant)).events;
    if (keepDays === null) return;
    const cutoff = new Date(this.#context.clock().getTime() - keepDays * DAY_MS);
    const filter = {
      tenant_id: tenant,
      occurred_at: { $lt: cutoff },
      ...(holds.userIds.length > 0 && { user_id: { $nin: holds.userIds } }),
    };
    await this.#removeInBatches(tenant, 'events', filter, { occurred_at: 1, _id: 1 }, dryRun, false, report, 'events', 'purge:events');
  }

  /**
   * Removes measurements older than the policy's `metrics.keepDays`, one metric name at a time
   * (names in order, a checkpoint after each), through the metrics repository's expiry purge: the
   * only command that may delete from the append-only `metrics`. Metrics name no user or
   * conversation, so only a tenant hold (checked before any rule) covers them.
   */
  async #metricsRule(tenant: string, dryRun: boolean, report: PurgeReport): Promise<void> {
    const { keepDays } = (await this.#policies.get(tenant)).metrics;
    if (keepDays === null) return;
    const before = new Date(this.#context.clock().getTime() - keepDays * DAY_MS);
    const access = this.#context.access(tenant, 'metrics');
    const checkpoints = this.#context.access(tenant, 'lifecycle_checkpoints');
    const task = 'purge:metrics';
    const [checkpoint] = dryRun ? [] : await checkpoints.rawFind('checkpoint.read', { tenant_id: tenant, task }, { limit: 1 });
    const after = (checkpoint?.state as { name?: string } | undefined)?.name;
    if (after !== undefined) report.resumed.push('metrics');
    const names = ((await access.rawDistinct('lifecycle.metrics (names)', 'name', { tenant_id: tenant })) as string[])
      .filter((name) => after === undefined || name > after)
      .sort();
    const metrics = this.#context.data.forTenant(tenant).metrics;
    for (const name of names) {
      if (dryRun) {
        report.counts.metrics += await access.rawCount('lifecycle.metrics (dry run)', {
          tenant_id: tenant,
          name,
          timestamp: { $lt: before },
        });
      } else {
        for (;;) {
          await this.#limiter?.take(tenant, this.#batchSize);
          const removed = await metrics.purgeExpiredBatch(name, { before, batchSize: this.#batchSize });
          report.counts.metrics += removed;
          this.#events.emit('progress', { tenant, rule: 'metrics', processed: report.counts.metrics, position: null, dryRun });
          if (removed < this.#batchSize) break;
        }
        await checkpoints.rawUpsert(
          'checkpoint.write',
          { tenant_id: tenant, task },
          {
            $set: {
              position: null,
              run_id: 'metrics',
              state: { name },
              processed: report.counts.metrics,
              updated_at: this.#context.clock(),
            },
            $setOnInsert: { created_at: this.#context.clock(), schema_version: 1 },
          },
        );
      }
      // After the checkpoint: a listener that sees this name knows a rerun resumes after it.
      this.#events.emit('progress', { tenant, rule: 'metrics', processed: report.counts.metrics, position: name, dryRun });
    }
    if (!dryRun) await checkpoints.rawDeleteMany('checkpoint.clear', { tenant_id: tenant, task });
  }

  async #fileShares(tenant: string, holds: ActiveHolds, dryRun: boolean, report: PurgeReport): Promise<void> {
    if (!(await this.#policies.get(tenant)).fileShares.expire) return;
    const access = this.#context.access(tenant, 'files');
    const filter = {
      tenant_id: tenant,
      'sharing.type': { $in: ['chat', 'public'] },
      'sharing.expiry': { $lt: this.#context.clock() },
      ...(holds.userIds.length > 0 && { uploader_id: { $nin: holds.userIds } }),
      ...(holds.conversationIds.length > 0 && { 'sharing.conversation_id': { $nin: holds.conversationIds } }),
    };
    if (dryRun) {
      report.counts.fileShares += await access.rawCount('lifecycle.fileShares (dry run)', filter);
      return;
    }
    // No checkpoint of its own: every share it expires leaves the filter, so after a crash the
    // rerun's first batch starts where the crashed run stopped.
    for (;;) {
      const batch = await access.rawFind('lifecycle.fileShares', filter, { limit: this.#batchSize, projection: { _id: 1 } });
      if (batch.length === 0) break;
      await this.#limiter?.take(tenant, batch.length);
      report.counts.fileShares += await access.rawUpdateMany(
        'lifecycle.fileShares (expire)',
        { ...filter, _id: { $in: batch.map((document) => document._id) } },
        { $set: { sharing: { type: 'private' }, updated_at: this.#context.clock() } },
      );
      this.#events.emit('progress', { tenant, rule: 'fileShares', processed: report.counts.fileShares, position: null, dryRun });
      if (batch.length < this.#batchSize) break;
    }
  }
}

/** What a purged message keeps: ids, conversation, thread, receipts, status and timestamps; no content. */
export function tombstoneUpdate(): Document {
  return {
    $unset: {
      'content.encrypted_data': '',
      'content.encrypted_key': '',
      'content.encrypted_preview': '',
      'content.file_id': '',
      search_tokens: '',
      search_key_version: '',
    },
  };
}
