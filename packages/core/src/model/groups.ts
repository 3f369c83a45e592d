import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { freeFormSchema, type IdInput, objectIdSchema, tenantIdSchema, text } from '../schema/primitives.js';

/** The fields of a `groups` document: a named set of users with an owner, optionally backed by a conversation. */
export const groupSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  name: text(256, 1),
  description: text(4096).optional(),
  owner_id: objectIdSchema,
  member_ids: z.array(objectIdSchema).max(100_000).default([]),
  /** The group conversation of this group, when it has one. */
  conversation_id: objectIdSchema.optional(),
  settings: freeFormSchema.optional(),
});

/** A stored group. */
export type Group = StoredDocument<typeof groupSchema>;

/** The definition of `groups`. */
export const groupsDefinition: RepositoryDefinition<typeof groupSchema> = {
  collection: 'groups',
  schema: groupSchema,
  tenantOwned: true,
  schemaVersion: 1,
  softDelete: true,
  versioned: true,
  indexes: [
    { name: 'tenant_member', key: { tenant_id: 1, member_ids: 1, _id: -1 }, purpose: 'the groups a user belongs to (listForMember)' },
    { name: 'tenant_owner', key: { tenant_id: 1, owner_id: 1, _id: -1 }, purpose: 'the groups a user owns (listOwnedBy)' },
  ],
  queries: [
    { name: 'listForMember', equality: ['tenant_id', 'member_ids'], sort: [['_id', -1]] },
    { name: 'removeMemberEverywhere', equality: ['tenant_id', 'member_ids'] },
    { name: 'listOwnedBy', equality: ['tenant_id', 'owner_id'], sort: [['_id', -1]] },
    { name: 'findById / members', equality: ['_id'] },
  ],
};

/** Groups of users. */
export class GroupRepository extends Repository<typeof groupSchema> {
  /** Adds a member; idempotent, also under concurrent calls. @returns true when added. */
  async addMember(groupId: IdInput, userId: IdInput): Promise<boolean> {
    const user = this.parseId(userId, 'userId');
    return this.#changeMembers('addMember', groupId, { member_ids: { $ne: user } }, { $push: { member_ids: user } });
  }

  /** Removes a member. @returns true when removed. */
  async removeMember(groupId: IdInput, userId: IdInput): Promise<boolean> {
    const user = this.parseId(userId, 'userId');
    return this.#changeMembers('removeMember', groupId, { member_ids: user }, { $pull: { member_ids: user } });
  }

  /**
   * Removes a user from every group of the tenant, deleted ones included (the cascade of deleting
   * the user; erasure). @returns how many groups changed.
   */
  async removeMemberEverywhere(userId: IdInput, tenant?: string): Promise<number> {
    const user = this.parseId(userId, 'userId');
    const tenantId = this.tenant ?? this.parse(tenantIdSchema, tenant, 'tenant');
    const result = await this.collection.updateMany(
      { name: 'removeMemberEverywhere', idempotent: true },
      { tenant_id: tenantId, member_ids: user },
      this.stampUpdate({ $pull: { member_ids: user } }),
    );
    return result.modifiedCount;
  }

  async #changeMembers(
    operation: string,
    groupId: IdInput,
    condition: Record<string, unknown>,
    change: Record<string, unknown>,
  ): Promise<boolean> {
    const id = this.parseId(groupId, 'groupId');
    const result = await this.collection.updateOne(operation, { _id: id, deleted_at: null, ...condition }, this.stampUpdate(change));
    if (result.matchedCount === 1) return true;
    if (!(await this.exists({ _id: id }))) throw new NotFoundError(this.name, id.toHexString());
    return false;
  }

  /** The groups a user belongs to, newest first. */
  async listForMember(userId: IdInput, options: PageOptions = {}): Promise<Page<Group>> {
    const filter = { tenant_id: this.requireTenant('listForMember'), member_ids: this.parseId(userId, 'userId'), deleted_at: null };
    return this.page('listForMember', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }

  /** The groups a user owns, newest first. */
  async listOwnedBy(ownerId: IdInput, options: PageOptions = {}): Promise<Page<Group>> {
    const filter = { tenant_id: this.requireTenant('listOwnedBy'), owner_id: this.parseId(ownerId, 'ownerId'), deleted_at: null };
    return this.page('listOwnedBy', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }
}
