import { BSON, type Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import { TenantContextError, ValidationError } from '../errors.js';
import { assertSafeDocument } from '../schema/input-guard.js';
import { dateSchema, objectIdSchema } from '../schema/primitives.js';
import { patchToSetPaths, validateUpdate } from '../schema/update-validator.js';
import { stampDocument } from '../scoping/scope-command.js';
import { parseInput } from '../validation-issues.js';

/**
 * The largest document (or update) a repository sends: MongoDB refuses 16 MiB, and the driver
 * fails before sending with a range error; this leaves room for the fields updates add later.
 */
const MAX_DOCUMENT_BYTES = 12 * 1024 * 1024;

/** Room for what a repository adds to a caller's document: system fields, the tenant, schema defaults. */
const SYSTEM_FIELDS_BYTES = 64 * 1024;

function assertStorableSize(document: Document, subject: string): void {
  const size = BSON.calculateObjectSize(document);
  if (size > MAX_DOCUMENT_BYTES)
    throw new ValidationError(subject, [
      { path: '', message: `encodes to ${size} bytes; at most ${MAX_DOCUMENT_BYTES} are stored`, code: 'too_big' },
    ]);
}

/** Fields every insert stamps anew, so two attempts of one write differ in them. */
const STAMPED_FIELDS = new Set(['created_at', 'updated_at']);

/** Whether two documents hold the same content, the stamped timestamps aside. */
export function sameContent(stored: Document, sent: Document): boolean {
  const content = (document: Document) =>
    BSON.EJSON.stringify(Object.fromEntries(Object.entries(document).filter(([key]) => !STAMPED_FIELDS.has(key))), { relaxed: false });
  return content(stored) === content(sent);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

/** What write preparation needs of its repository. */
export interface WritePreparationDefinition {
  readonly collection: string;
  readonly schema: z.ZodObject;
  readonly tenantOwned: boolean;
  readonly schemaVersion: number;
  readonly softDelete?: boolean | undefined;
  readonly versioned?: boolean | undefined;
  readonly creatable?: readonly string[] | undefined;
}

/**
 * Turns callers' input into what a repository sends: new documents validated, stamped with the
 * tenant and the system fields; update operators and patches validated against the whole stored
 * document, with `updated_at` (and the version bump). One job, used by every write path of a
 * repository (create, createMany, upsert, bulk writes, updates).
 */
export class WritePreparation {
  readonly #definition: WritePreparationDefinition;
  readonly #validates: boolean;
  readonly #now: () => Date;
  readonly #tenant: () => string | undefined;
  /** The schema of `create` input: the domain schema plus an optional `_id`. */
  readonly #createSchema: z.ZodObject;
  /** The schema of a whole stored document, for update-path validation and projections. */
  readonly documentSchema: z.ZodObject;
  readonly #protectedFields: ReadonlySet<string> = new Set([
    '_id',
    'tenant_id',
    'schema_version',
    'created_at',
    'updated_at',
    'deleted_at',
    'version',
  ]);

  /** @param tenant - the tenant writes are for (the repository's binding or the ambient one). */
  constructor(definition: WritePreparationDefinition, options: { validates: boolean; now: () => Date; tenant: () => string | undefined }) {
    this.#definition = definition;
    this.#validates = options.validates;
    this.#now = options.now;
    this.#tenant = options.tenant;
    this.#createSchema = definition.schema.extend({ _id: objectIdSchema.optional() });
    this.documentSchema = definition.schema.extend({
      _id: objectIdSchema,
      schema_version: z.number().int(),
      created_at: dateSchema,
      updated_at: dateSchema,
      ...(definition.softDelete && { deleted_at: dateSchema.nullable() }),
      ...(definition.versioned && { version: z.number().int() }),
    });
  }

  /** A full new document from `input`: validated, stamped with the tenant and the system fields. */
  insert(input: unknown, subject: string): Document {
    const definition = this.#definition;
    if (!isPlainObject(input)) throw new ValidationError(subject, [{ path: '', message: 'must be a plain object', code: 'invalid_type' }]);
    const inputBytes = assertSafeDocument(input, subject);
    const { creatable } = definition;
    if (creatable) {
      const refused = Object.keys(input).filter((field) => field !== '_id' && !creatable.includes(field));
      if (refused.length > 0) {
        throw new ValidationError(
          subject,
          refused.map((field) => ({ path: field, message: 'is set by the repository, not by callers', code: 'unrecognized_keys' })),
        );
      }
    }
    const tenant = this.#tenant();
    if (definition.tenantOwned && tenant === undefined && input.tenant_id === undefined) {
      throw new TenantContextError(
        `${subject} names no tenant and none is bound: use dataLayer.forTenant(tenantId).${definition.collection}`,
      );
    }
    const stamped = definition.tenantOwned && tenant !== undefined ? stampDocument(input, tenant, subject) : input;
    const parsed = this.#validates ? (parseInput(this.#createSchema, stamped, subject) as Document) : { ...stamped };
    const now = this.#now();
    const document = {
      _id: parsed._id ?? new ObjectId(),
      ...parsed,
      schema_version: definition.schemaVersion,
      created_at: now,
      updated_at: now,
      ...(definition.softDelete && { deleted_at: null }),
      ...(definition.versioned && { version: 1 }),
    };
    // The exact size only when the bound found on the safety walk (plus the system fields and
    // defaults the repository adds) could reach the limit.
    if (inputBytes + SYSTEM_FIELDS_BYTES > MAX_DOCUMENT_BYTES) assertStorableSize(document, subject);
    return document;
  }

  /** Raw update operators validated against the stored document, with `updated_at` (and the version bump). */
  update(update: unknown, subject: string): Document {
    const validated = validateUpdate(this.documentSchema, update, { protectedFields: this.#protectedFields, subject });
    assertStorableSize(validated, subject);
    return this.stamp(validated);
  }

  /** A deep-partial patch as a validated `$set` update. */
  patch(patch: unknown, subject: string): Document {
    if (!isPlainObject(patch)) throw new ValidationError(subject, [{ path: '', message: 'must be a plain object', code: 'invalid_type' }]);
    if (Object.keys(patch).length === 0)
      throw new ValidationError(subject, [{ path: '', message: 'must change at least one field', code: 'too_small' }]);
    assertSafeDocument(patch, subject);
    return this.update({ $set: patchToSetPaths(this.documentSchema, patch) }, subject);
  }

  /** `updated_at` and, for versioned repositories, `$inc: { version: 1 }` added to an update. */
  stamp(update: Document): Document {
    const stamped: Document = { ...update, $set: { ...(update.$set as Document | undefined), updated_at: this.#now() } };
    if (this.#definition.versioned) stamped.$inc = { ...(update.$inc as Document | undefined), version: 1 };
    return stamped;
  }
}
