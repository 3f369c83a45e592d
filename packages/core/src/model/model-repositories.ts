import type { z } from 'zod';
import type { IndexSyncReport, SyncIndexesOptions } from '../indexes/index-sync.js';
import type { RepositoryContext, RepositoryDefinition } from '../repository/repository.js';
import { AggregationRepository, aggregationsDefinition } from './aggregations.js';
import { ApiKeyRepository, apiKeysDefinition } from './api-keys.js';
import { ApplicationRepository, applicationsDefinition } from './applications.js';
import { AuditLogRepository, auditLogsDefinition } from './audit-logs.js';
import { BillingRepository, billingDefinition } from './billing.js';
import { ClientRepository, clientsDefinition } from './clients.js';
import { ConversationRepository, conversationsDefinition } from './conversations.js';
import { EventRepository, eventsDefinition } from './events.js';
import { FileRepository, filesDefinition } from './files.js';
import { GroupRepository, groupsDefinition } from './groups.js';
import type { MessageReferenceOptions } from './message-references.js';
import { MessageRepository, messagesDefinition } from './messages.js';
import { MetricRepository, metricsDefinition } from './metrics.js';
import type { ReceiptPolicy } from './read-positions.js';
import { SettingsRepository, settingsDefinition } from './settings.js';
import { createTenantAccount, type TenantAccount } from './tenant-account.js';
import { UserRepository, type UserRepositoryOptions, type userSchema, usersDefinition } from './users.js';

/** Anything the data layer can build and sync: a repository or an append-only store. */
export interface Syncable {
  readonly name: string;
  syncIndexes(options?: SyncIndexesOptions): Promise<IndexSyncReport>;
}

/** Builds one repository on the data layer's pipeline. */
export type RepositoryBuilder = <S extends z.ZodObject, R extends Syncable>(
  definition: RepositoryDefinition<S>,
  construct: new (definition: RepositoryDefinition<S>, context: RepositoryContext) => R,
) => R;

/** Every repository of the CAAS data model. */
export interface ModelRepositories {
  readonly users: UserRepository;
  readonly conversations: ConversationRepository;
  readonly messages: MessageRepository;
  readonly files: FileRepository;
  readonly groups: GroupRepository;
  readonly settings: SettingsRepository;
  readonly clients: ClientRepository;
  readonly applications: ApplicationRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly billing: BillingRepository;
  readonly auditLogs: AuditLogRepository;
  readonly events: EventRepository;
  readonly metrics: MetricRepository;
  readonly aggregations: AggregationRepository;
}

/** The repositories of the collections whose documents belong to tenants. */
export type TenantOwnedRepositoryName =
  | 'users'
  | 'conversations'
  | 'messages'
  | 'files'
  | 'groups'
  | 'settings'
  | 'events'
  | 'metrics'
  | 'aggregations';

/**
 * What a tenant-bound view (`dataLayer.forTenant(id)`) offers: every tenant-owned repository, scoped
 * to the tenant, and `account`, the tenant's own platform records. The platform repositories
 * themselves (clients, applications, API keys, audit logs, billing) are not on it: they administer
 * every tenant and live on the unbound data layer.
 */
export type TenantRepositories = Pick<ModelRepositories, TenantOwnedRepositoryName> & { readonly account: TenantAccount };

/** The repository names of {@link ModelRepositories}. */
export type RepositoryName = keyof ModelRepositories;

/** The collection of each repository of the data model. */
export const repositoryCollections: Readonly<Record<RepositoryName, string>> = {
  users: 'users',
  conversations: 'conversations',
  messages: 'messages',
  files: 'files',
  groups: 'groups',
  settings: 'settings',
  clients: 'clients',
  applications: 'applications',
  apiKeys: 'api_keys',
  billing: 'billing',
  auditLogs: 'audit_logs',
  events: 'events',
  metrics: 'metrics',
  aggregations: 'aggregations',
};

/** Options of the model repositories. */
export interface ModelOptions {
  users?: UserRepositoryOptions;
  /** `messages.create` checks its conversation and sender (see `createDataLayer`'s `integrity`). */
  messageReferences?: MessageReferenceOptions;
  /** Where `messages.markConversationRead` writes per-message receipts (see `createDataLayer`'s `receipts`). */
  receipts?: ReceiptPolicy;
}

/** Builds every repository of the data model with `build`, and links the ones that cooperate. */
export function createModelRepositories(build: RepositoryBuilder, options: ModelOptions = {}): ModelRepositories {
  const userOptions = options.users ?? {};
  const conversations = build(conversationsDefinition, ConversationRepository);
  const messages = build(messagesDefinition, MessageRepository);
  messages.linkConversations(conversations, options.messageReferences);
  if (options.receipts) messages.useReceiptPolicy(options.receipts);
  // Cascades: a deleted conversation's messages are soft-deleted; a user deleted for good leaves
  // every conversation and group.
  conversations.onRemoved((conversationId, tenant) => messages.softDeleteWhere({ conversationId }, tenant));
  const groups = build(groupsDefinition, GroupRepository);
  const users = build(
    usersDefinition(userOptions),
    class extends UserRepository {
      constructor(definition: RepositoryDefinition<typeof userSchema>, context: RepositoryContext) {
        super(definition, context, userOptions);
      }
    },
  );
  users.onRemoved(async (userId, tenant) => {
    await conversations.removeParticipantEverywhere(userId, tenant);
    await groups.removeMemberEverywhere(userId, tenant);
  });
  return {
    users,
    conversations,
    messages,
    files: build(filesDefinition, FileRepository),
    groups,
    settings: build(settingsDefinition, SettingsRepository),
    clients: build(clientsDefinition, ClientRepository),
    applications: build(applicationsDefinition, ApplicationRepository),
    apiKeys: build(apiKeysDefinition, ApiKeyRepository),
    billing: build(billingDefinition, BillingRepository),
    auditLogs: build(auditLogsDefinition, AuditLogRepository),
    events: build(eventsDefinition, EventRepository),
    metrics: build(metricsDefinition, MetricRepository),
    aggregations: build(aggregationsDefinition, AggregationRepository),
  };
}

/** The tenant-bound view of `repositories` (built bound to `tenant`). */
export function tenantRepositoriesOf(tenant: string, repositories: ModelRepositories): TenantRepositories {
  const { users, conversations, messages, files, groups, settings, events, metrics, aggregations } = repositories;
  return {
    users,
    conversations,
    messages,
    files,
    groups,
    settings,
    events,
    metrics,
    aggregations,
    account: createTenantAccount(tenant, repositories),
  };
}
