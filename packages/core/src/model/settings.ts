import type { Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { assertSafeDocument } from '../schema/input-guard.js';
import { type FreeForm, freeFormSchema, type IdInput, objectIdSchema, safeKeySchema, tenantIdSchema } from '../schema/primitives.js';

/** The fields of a `settings` document: one per tenant (scope `tenant`) and one per user (scope `user`). */
export const settingsSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  scope: z.enum(['tenant', 'user']),
  user_id: objectIdSchema.optional(),
  /** `tenant` or `user:<user id>`: unique per tenant. */
  owner_key: z.string().regex(/^(tenant|user:[0-9a-f]{24})$/),
  values: freeFormSchema.default({}),
});

/** A stored settings document. */
export type Settings = StoredDocument<typeof settingsSchema>;

/** The definition of `settings`. */
export const settingsDefinition: RepositoryDefinition<typeof settingsSchema> = {
  collection: 'settings',
  schema: settingsSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [
    {
      name: 'tenant_owner',
      key: { tenant_id: 1, owner_key: 1 },
      unique: true,
      purpose: 'one settings document per tenant and per user (get, set, resolve)',
    },
  ],
  queries: [{ name: 'get / set / unset / resolve', equality: ['tenant_id', 'owner_key'] }],
};

const settingValueSchema = freeFormSchema.valueType;

/** Settings per tenant and per user; a user's settings override the tenant's in {@link SettingsRepository.resolve}. */
export class SettingsRepository extends Repository<typeof settingsSchema> {
  #ownerKey(userId: IdInput | undefined): { owner_key: string; scope: 'tenant' | 'user'; user_id?: ObjectId } {
    if (userId === undefined) return { owner_key: 'tenant', scope: 'tenant' };
    const id = this.parseId(userId, 'userId');
    return { owner_key: `user:${id.toHexString()}`, scope: 'user', user_id: id };
  }

  /** The tenant's settings (`userId` omitted) or one user's, as stored (`{}` when none). */
  async get(userId?: IdInput): Promise<FreeForm> {
    const owner = this.#ownerKey(userId);
    const found = await this.findOne({ tenant_id: this.requireTenant('get'), owner_key: owner.owner_key });
    return found?.values ?? {};
  }

  /** Sets one setting of the tenant (`userId` omitted) or of a user. */
  async set(key: string, value: unknown, userId?: IdInput): Promise<void> {
    const tenant = this.requireTenant('set');
    const field = this.parse(safeKeySchema, key, 'key');
    // The key guard runs before zod, which would silently drop a __proto__ key.
    assertSafeDocument(value, `settings.${field}`);
    const parsed = this.parse(settingValueSchema, value, `settings.${field}`);
    const { owner_key, ...owner } = this.#ownerKey(userId);
    const now = this.now();
    const update: Document = {
      $set: { [`values.${field}`]: parsed, updated_at: now },
      $setOnInsert: { ...owner, created_at: now, schema_version: this.definition.schemaVersion },
    };
    await this.upsertOne('set', { tenant_id: tenant, owner_key }, update);
  }

  /** Removes one setting. @returns true when it existed. */
  async unset(key: string, userId?: IdInput): Promise<boolean> {
    const field = this.parse(safeKeySchema, key, 'key');
    const { owner_key } = this.#ownerKey(userId);
    const result = await this.collection.updateOne(
      'unset',
      { tenant_id: this.requireTenant('unset'), owner_key, [`values.${field}`]: { $exists: true } },
      { $unset: { [`values.${field}`]: '' }, $set: { updated_at: this.now() } },
    );
    return result.modifiedCount === 1;
  }

  /** The settings in effect for a user: the tenant's, overridden key by key by the user's own. */
  async resolve(userId: IdInput): Promise<FreeForm> {
    const [tenantSettings, userSettings] = await Promise.all([this.get(), this.get(userId)]);
    return { ...tenantSettings, ...userSettings };
  }
}
