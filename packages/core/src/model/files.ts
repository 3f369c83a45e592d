import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, type IdInput, objectIdSchema, tenantIdSchema, text } from '../schema/primitives.js';

/** Where file bytes live. */
export const storageProviders = ['s3', 'gcs', 'azure'] as const;
/** Who may see a file. */
export const sharingTypes = ['private', 'chat', 'public'] as const;

const sharingSchema = z
  .strictObject({
    type: z.enum(sharingTypes),
    /** The conversation a `chat` share is visible in. */
    conversation_id: objectIdSchema.optional(),
    /** After this, the share no longer grants access. */
    expiry: dateSchema.optional(),
  })
  .refine((sharing) => sharing.type !== 'chat' || sharing.conversation_id !== undefined, {
    message: 'a chat share needs conversation_id',
    path: ['conversation_id'],
  });

/** The fields of a `files` document (the plan's 2.4): metadata only, bytes live in object storage. */
export const fileSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  uploader_id: objectIdSchema,
  storage: z.strictObject({
    provider: z.enum(storageProviders),
    bucket: text(256, 1),
    key: text(1024, 1),
    cdn_url: z
      .url({ protocol: /^https$/ })
      .max(2048)
      .optional(),
  }),
  metadata: z.strictObject({
    filename: text(512, 1),
    mime_type: z
      .string()
      .regex(/^[\w.+-]+\/[\w.+-]+$/, 'must be a MIME type such as image/png')
      .max(255),
    size: z
      .number()
      .int()
      .min(0)
      .max(5 * 1024 ** 4),
    checksum: z.string().regex(/^[A-Za-z0-9+/=:_-]{8,256}$/, 'must be an encoded digest'),
    dimensions: z
      .strictObject({ width: z.number().int().min(1), height: z.number().int().min(1), duration_ms: z.number().int().min(0).optional() })
      .optional(),
  }),
  encryption: z.strictObject({ algorithm: z.enum(['AES-256-GCM', 'XChaCha20-Poly1305']), encrypted_key: text(4096, 1) }).optional(),
  sharing: sharingSchema.default({ type: 'private' }),
});

/** A stored file record. */
export type FileRecord = StoredDocument<typeof fileSchema>;

/** The definition of `files`. */
export const filesDefinition: RepositoryDefinition<typeof fileSchema> = {
  collection: 'files',
  schema: fileSchema,
  tenantOwned: true,
  schemaVersion: 1,
  softDelete: true,
  indexes: [
    { name: 'tenant_uploader', key: { tenant_id: 1, uploader_id: 1, _id: -1 }, purpose: 'a user’s uploads, newest first (listByUploader)' },
    {
      name: 'tenant_sharing',
      key: { tenant_id: 1, 'sharing.type': 1, 'sharing.conversation_id': 1, _id: -1 },
      purpose: 'files shared in a conversation (listSharedInConversation)',
    },
    {
      name: 'tenant_storage_key',
      key: { tenant_id: 1, 'storage.provider': 1, 'storage.bucket': 1, 'storage.key': 1 },
      unique: true,
      purpose: 'one record per stored object (findByStorageKey)',
    },
  ],
  queries: [
    { name: 'listByUploader', equality: ['tenant_id', 'uploader_id'], sort: [['_id', -1]] },
    {
      name: 'listSharedInConversation',
      equality: ['tenant_id', 'sharing.type', 'sharing.conversation_id'],
      sort: [['_id', -1]],
      residual: ['sharing.expiry'],
    },
    { name: 'findByStorageKey', equality: ['tenant_id', 'storage.provider', 'storage.bucket', 'storage.key'] },
    { name: 'findById / share', equality: ['_id'] },
  ],
};

/** File metadata: storage location, encryption and sharing with expiry. */
export class FileRepository extends Repository<typeof fileSchema> {
  /** A user's uploads, newest first. */
  async listByUploader(uploaderId: IdInput, options: PageOptions = {}): Promise<Page<FileRecord>> {
    const filter = {
      tenant_id: this.requireTenant('listByUploader'),
      uploader_id: this.parseId(uploaderId, 'uploaderId'),
      deleted_at: null,
    };
    return this.page('listByUploader', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }

  /** Files shared in a conversation whose share has not expired at `at`. */
  async listSharedInConversation(conversationId: IdInput, options: PageOptions & { at?: Date } = {}): Promise<Page<FileRecord>> {
    const { at, ...page } = options;
    const when = this.parse(dateSchema, at ?? this.now(), 'at');
    const filter = {
      tenant_id: this.requireTenant('listSharedInConversation'),
      'sharing.type': 'chat',
      'sharing.conversation_id': this.parseId(conversationId, 'conversationId'),
      $or: [{ 'sharing.expiry': { $exists: false } }, { 'sharing.expiry': { $gt: when } }],
      deleted_at: null,
    };
    return this.page('listSharedInConversation', filter, { ...page, sort: { field: '_id', direction: 'desc' } });
  }

  /** The record of one stored object. */
  async findByStorageKey(provider: (typeof storageProviders)[number], bucket: string, key: string): Promise<FileRecord | null> {
    return this.findOne({
      tenant_id: this.requireTenant('findByStorageKey'),
      'storage.provider': this.parse(z.enum(storageProviders), provider, 'provider'),
      'storage.bucket': this.parse(text(256, 1), bucket, 'bucket'),
      'storage.key': this.parse(text(1024, 1), key, 'key'),
    });
  }

  /** Changes who may see a file (and until when). */
  async share(fileId: IdInput, sharing: z.input<typeof sharingSchema>): Promise<FileRecord> {
    const parsed = this.parse(sharingSchema, sharing, 'sharing');
    return this.update(fileId, { sharing: parsed });
  }

  /**
   * True when the file may be shown in `conversationId` at `at`: public and unexpired, or shared in
   * that conversation and unexpired.
   */
  async isVisibleIn(fileId: IdInput, conversationId: IdInput, at: Date = this.now()): Promise<boolean> {
    const conversation = this.parseId(conversationId, 'conversationId');
    const when = this.parse(dateSchema, at, 'at');
    const file = await this.findById(fileId, { projection: { sharing: 1 } });
    if (!file) throw new NotFoundError(this.name, String(fileId));
    const { sharing } = file;
    if (sharing.expiry && sharing.expiry <= when) return false;
    return sharing.type === 'public' || (sharing.type === 'chat' && sharing.conversation_id?.equals(conversation) === true);
  }
}
