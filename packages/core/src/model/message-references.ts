import { LRUCache } from 'lru-cache';
import type { ObjectId } from 'mongodb';
import { CaasDbError } from '../errors.js';

/** Why a message was refused: its conversation is missing or deleted, or its sender is not a participant. */
export type ReferenceProblem = 'conversation_missing' | 'conversation_deleted' | 'sender_not_participant';

/**
 * A message names a conversation that does not exist or is deleted, or a sender who is not one of
 * its participants. Nothing was written. Code `E_REFERENTIAL_INTEGRITY`.
 */
export class ReferentialIntegrityError extends CaasDbError {
  readonly code = 'E_REFERENTIAL_INTEGRITY';
  /** What was wrong. */
  readonly problem: ReferenceProblem;
  /** The conversation the message named. */
  readonly conversationId: string;
  /** The sender the message named. */
  readonly senderId: string;

  constructor(problem: ReferenceProblem, conversationId: string, senderId: string) {
    const reason = {
      conversation_missing: `conversation ${conversationId} does not exist`,
      conversation_deleted: `conversation ${conversationId} is deleted`,
      sender_not_participant: `sender ${senderId} is not a participant of conversation ${conversationId}`,
    }[problem];
    super(`messages.create refused: ${reason}`);
    this.problem = problem;
    this.conversationId = conversationId;
    this.senderId = senderId;
  }
}

/** Options of the reference check of `messages.create` (`createDataLayer({ integrity: { messages } })`). */
export interface MessageReferenceOptions {
  /**
   * How long a successful check is remembered, per tenant, conversation and sender. Another
   * instance's `leave` or delete is seen at most this late; this instance's own are seen at once.
   * 0 turns the cache off. @default 5000
   */
  cacheTtlMS?: number;
  /** Most conversations remembered. @default 50000 */
  cacheSize?: number;
}

/** What the check reads: the conversations repository's live-participant lookup. */
export interface ParticipantLookup {
  /** One indexed read by `_id` (live conversations only). */
  isParticipant(conversationId: ObjectId, senderId: ObjectId): Promise<boolean>;
  /** Whether the conversation exists at all, and whether it is deleted (refusal path only). */
  stateOf(conversationId: ObjectId): Promise<'missing' | 'deleted' | 'live'>;
}

/**
 * Refuses a message whose conversation or sender does not hold: one indexed read per (tenant,
 * conversation, sender) on a miss, remembered for `cacheTtlMS`. A refusal reads once more to say why.
 */
export class MessageReferences {
  readonly #lookup: ParticipantLookup;
  /** Per conversation (ObjectIds are unique across tenants): the `tenant|sender` pairs known to hold. */
  readonly #known: LRUCache<string, Set<string>> | undefined;

  constructor(lookup: ParticipantLookup, options: MessageReferenceOptions = {}) {
    this.#lookup = lookup;
    const ttl = options.cacheTtlMS ?? 5000;
    this.#known = ttl > 0 ? new LRUCache({ max: options.cacheSize ?? 50_000, ttl, ttlAutopurge: false }) : undefined;
  }

  /** @throws {ReferentialIntegrityError} when the conversation or the sender does not hold. */
  async check(tenant: string, conversationId: ObjectId, senderId: ObjectId): Promise<void> {
    const conversation = conversationId.toHexString();
    const pair = `${tenant}|${senderId.toHexString()}`;
    if (this.#known?.get(conversation)?.has(pair)) return;
    if (await this.#lookup.isParticipant(conversationId, senderId)) {
      const senders = this.#known?.get(conversation);
      if (senders) senders.add(pair);
      else this.#known?.set(conversation, new Set([pair]));
      return;
    }
    const state = await this.#lookup.stateOf(conversationId);
    const problem = state === 'missing' ? 'conversation_missing' : state === 'deleted' ? 'conversation_deleted' : 'sender_not_participant';
    throw new ReferentialIntegrityError(problem, conversationId.toHexString(), senderId.toHexString());
  }

  /**
   * Forgets every remembered check of a conversation (its participants changed, or it was deleted),
   * or of every conversation when none is named (a user left all of them).
   */
  forget(conversationId?: ObjectId): void {
    if (conversationId === undefined) this.#known?.clear();
    else this.#known?.delete(conversationId.toHexString());
  }
}
