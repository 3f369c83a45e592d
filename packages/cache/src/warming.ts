import type { TenantRepositories } from '@caas-db/core';

/** Bounds of a warm-up. */
export interface WarmOptions {
  /** Most recently active users to warm. @default 100 */
  users?: number;
  /** Conversations listed per user (the first page of `listForUser`). @default 20 */
  conversationsPerUser?: number;
  /** Stop after this long. @default 2000 */
  timeBudgetMS?: number;
}

/** What a warm-up loaded. */
export interface WarmReport {
  users: number;
  conversationLists: number;
  elapsedMS: number;
  /** True when the time budget ran out before everything was loaded. */
  stoppedEarly: boolean;
}

/**
 * Loads a tenant's hot data through the repositories (and so into the cache): the profiles of its
 * most recently active users and the first page of each one's conversations, bounded in count and
 * time. Pass the repositories of one tenant (`data.forTenant(tenantId)`).
 */
export async function warmTenant(repositories: TenantRepositories, options: WarmOptions = {}): Promise<WarmReport> {
  const started = Date.now();
  const deadline = started + (options.timeBudgetMS ?? 2000);
  const report: WarmReport = { users: 0, conversationLists: 0, elapsedMS: 0, stoppedEarly: false };
  const recent = await repositories.users.listRecentlyActive({ limit: Math.min(500, options.users ?? 100) });
  for (const user of recent.items) {
    if (Date.now() >= deadline) {
      report.stoppedEarly = true;
      break;
    }
    await repositories.users.findById(user._id);
    report.users += 1;
    await repositories.conversations.listForUser(user._id, { limit: Math.min(500, options.conversationsPerUser ?? 20) });
    report.conversationLists += 1;
  }
  report.elapsedMS = Date.now() - started;
  return report;
}
