import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, type IdInput, objectIdSchema, tenantIdSchema, text } from '../schema/primitives.js';

const PREFIX_PATTERN = /^[a-z0-9]{12}$/;
/** `caas_<12-character public prefix>_<43-character secret>` */
const KEY_PATTERN = /^caas_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const scopeSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)*$/, 'must be a scope such as messages:write')
  .max(64);

/** The fields of an `api_keys` document. Only a SHA-256 hash of the secret is stored. A platform collection. */
export const apiKeySchema = z.strictObject({
  tenant_id: tenantIdSchema,
  application_id: objectIdSchema.optional(),
  name: text(256, 1),
  /** The public part of the key, shown in dashboards and logs; unique. */
  prefix: z.string().regex(PREFIX_PATTERN),
  /** SHA-256 (hex) of the whole key. The key itself is shown once, at issue, and never stored. */
  secret_hash: z.string().regex(/^[0-9a-f]{64}$/),
  scopes: z.array(scopeSchema).min(1).max(64),
  expires_at: dateSchema.optional(),
  last_used_at: dateSchema.optional(),
  revoked_at: dateSchema.nullable().default(null),
});

/** A stored API key (without its secret, which is never stored). */
export type ApiKey = StoredDocument<typeof apiKeySchema>;

/** Why {@link ApiKeyRepository.verify} refused a key. */
export type ApiKeyRejection = 'malformed' | 'unknown' | 'revoked' | 'expired';

/** The outcome of {@link ApiKeyRepository.verify}. */
export type ApiKeyVerification = { valid: true; key: ApiKey } | { valid: false; reason: ApiKeyRejection };

/** The definition of `api_keys`. */
export const apiKeysDefinition: RepositoryDefinition<typeof apiKeySchema> = {
  collection: 'api_keys',
  schema: apiKeySchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [
    { name: 'prefix', key: { prefix: 1 }, unique: true, purpose: 'verify: find a key by its public prefix' },
    { name: 'tenant_id', key: { tenant_id: 1, _id: -1 }, purpose: 'a client’s keys (listForTenant)' },
  ],
  queries: [
    { name: 'verify', equality: ['prefix'] },
    { name: 'listForTenant', equality: ['tenant_id'], sort: [['_id', -1]] },
    { name: 'revoke / touch', equality: ['_id'] },
  ],
};

const issueInput = z.strictObject({
  tenant_id: tenantIdSchema,
  application_id: objectIdSchema.optional(),
  name: text(256, 1),
  scopes: z.array(scopeSchema).min(1).max(64),
  expires_at: dateSchema.optional(),
});

function hashOf(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A hash compared against when the prefix is unknown, so a miss costs what a hit costs. */
const DECOY_HASH = hashOf('caas_decoy');

/**
 * API keys: issued once, stored as a SHA-256 hash with a public prefix, verified in constant time.
 * SHA-256 is enough here because keys carry 256 bits of randomness: there is nothing to brute-force
 * that a slow password hash would protect.
 */
export class ApiKeyRepository extends Repository<typeof apiKeySchema> {
  /**
   * Creates a key. The returned `secret` is the only copy: show it to the client once.
   * @returns the stored record and the secret (`caas_<prefix>_<43 characters>`).
   */
  async issue(input: z.input<typeof issueInput>): Promise<{ key: ApiKey; secret: string }> {
    const parsed = this.parse(issueInput, input, 'api key');
    const prefix = randomBytes(12)
      .toString('base64url')
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '0')
      .slice(0, 12);
    const secret = `caas_${prefix}_${randomBytes(32).toString('base64url')}`;
    const key = await this.create({ ...parsed, prefix, secret_hash: hashOf(secret) });
    return { key, secret };
  }

  /**
   * Checks a presented key: its hash is compared in constant time, and revoked or expired keys are
   * refused. A valid key's `last_used_at` is refreshed at most once a minute.
   */
  async verify(secret: unknown, at: Date = this.now()): Promise<ApiKeyVerification> {
    const match = typeof secret === 'string' ? KEY_PATTERN.exec(secret) : null;
    if (!match?.[1]) return { valid: false, reason: 'malformed' };
    const key = (await this.findOne({ prefix: match[1] })) as ApiKey | null;
    const expected = Buffer.from(key?.secret_hash ?? DECOY_HASH, 'hex');
    const presented = Buffer.from(hashOf(secret as string), 'hex');
    const equal = timingSafeEqual(expected, presented);
    if (!key || !equal) return { valid: false, reason: 'unknown' };
    if (key.revoked_at) return { valid: false, reason: 'revoked' };
    if (key.expires_at && key.expires_at <= at) return { valid: false, reason: 'expired' };
    if (!key.last_used_at || at.getTime() - key.last_used_at.getTime() > 60_000) {
      await this.collection.updateOne('verify (last used)', { _id: key._id }, { $max: { last_used_at: at } });
    }
    return { valid: true, key };
  }

  /** Revokes a key; verification refuses it from now on. @returns true when this call revoked it. */
  async revoke(id: IdInput): Promise<boolean> {
    const objectId = this.parseId(id);
    const result = await this.collection.updateOne(
      'revoke',
      { _id: objectId, revoked_at: null },
      this.stampUpdate({ $set: { revoked_at: this.now() } }),
    );
    if (result.matchedCount === 1) return true;
    if (!(await this.exists({ _id: objectId }))) throw new NotFoundError(this.name, objectId.toHexString());
    return false;
  }

  /** A client's keys, newest first. */
  async listForTenant(tenantId: string, options: PageOptions = {}): Promise<Page<ApiKey>> {
    return this.page(
      'listForTenant',
      { tenant_id: this.parse(tenantIdSchema, tenantId, 'tenantId') },
      { ...options, sort: { field: '_id', direction: 'desc' } },
    );
  }
}
