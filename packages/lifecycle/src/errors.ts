import { CaasDbError } from '@caas-db/core';

/** What a legal hold covers: a whole tenant, one user, or one conversation. */
export type HoldScope = 'tenant' | 'user' | 'conversation';

/** The part of a hold an error names (no reason text: it may itself be sensitive). */
export interface HoldReference {
  /** The hold's id. */
  id: string;
  /** What it covers. */
  scope: HoldScope;
  /** The tenant it belongs to. */
  tenant: string;
  /** The user or conversation id, for user and conversation holds. */
  target?: string;
}

/**
 * A legal hold covers what the operation would remove or change (purge, TTL expiry, hard delete,
 * erase). Nothing was written. Code `E_LEGAL_HOLD`; `hold` names the hold.
 */
export class LegalHoldError extends CaasDbError {
  readonly code = 'E_LEGAL_HOLD';
  /** The hold that refused the operation. */
  readonly hold: HoldReference;
  /** What was refused, e.g. `eraseUser`, `purge`, `users.delete`. */
  readonly operation: string;

  constructor(operation: string, hold: HoldReference) {
    const what = hold.scope === 'tenant' ? `tenant ${hold.tenant}` : `${hold.scope} ${hold.target} of tenant ${hold.tenant}`;
    super(`${operation} refused: legal hold ${hold.id} covers ${what}`);
    this.hold = hold;
    this.operation = operation;
  }
}

/**
 * A retention rule would break compliance retention (an audit purge younger than the configured
 * minimum, a policy that keeps audit logs less than it). Nothing was written. Code `E_RETENTION`.
 */
export class RetentionError extends CaasDbError {
  readonly code = 'E_RETENTION';
  /** The rule that refused, e.g. `audit.keepDays`. */
  readonly rule: string;

  constructor(rule: string, reason: string) {
    super(`${reason} (${rule})`);
    this.rule = rule;
  }
}
