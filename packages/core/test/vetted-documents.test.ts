/**
 * The scoper sends a document a repository prepared itself without walking it again. A subclass
 * holds that document between preparing and sending it: whatever it changes there must not get
 * past the scoper (another tenant, a toBSON that would serialize something else).
 */
import { createTestClient } from '@caas-db/testing/vitest';
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createDataLayer,
  Repository,
  type RepositoryDefinition,
  TenancyViolationError,
  TenantMismatchError,
  tenantIdSchema,
  text,
} from '../src/index.js';
import { unsafeDatabase } from '../src/unsafe.js';

const itemSchema = z.strictObject({ tenant_id: tenantIdSchema, title: text(64, 1) });
const definition: RepositoryDefinition<typeof itemSchema> = {
  collection: 'vetted_items',
  schema: itemSchema,
  tenantOwned: true,
  schemaVersion: 1,
  indexes: [],
  queries: [],
};

/** A repository of a service author's that changes a prepared document before sending it. */
class Tampering extends Repository<typeof itemSchema> {
  async insertChanged(change: (document: Document) => void): Promise<void> {
    const document = this.prepareInsert({ title: 'prepared' });
    change(document);
    await this.collection.insertOne('insertChanged', document);
  }

  async insertManyChanged(change: (document: Document) => void): Promise<void> {
    const documents = [this.prepareInsert({ title: 'first' }), this.prepareInsert({ title: 'second' })];
    change(documents[1] as Document);
    await this.collection.insertMany('insertManyChanged', documents, true);
  }

  async bulkInsertChanged(change: (document: Document) => void): Promise<void> {
    const document = this.prepareInsert({ title: 'bulk' });
    change(document);
    await this.collection.bulkWrite('bulkInsertChanged', [{ insertOne: { document } }], true);
  }
}

const client = createTestClient();
const data = createDataLayer({ client });
const acme = data.repository(definition, Tampering, 'acme');
const stored = () => unsafeDatabase(client).collection('vetted_items').find({}).toArray();

describe('documents a repository prepared', () => {
  it('are sent as prepared', async () => {
    await acme.insertChanged(() => undefined);
    await acme.insertManyChanged(() => undefined);
    expect((await stored()).map((document) => document.tenant_id)).toEqual(['acme', 'acme', 'acme']);
  });

  const tamperings: Array<[string, (document: Document) => void, new (...args: never[]) => Error]> = [
    ['another tenant', (document) => Object.assign(document, { tenant_id: 'globex' }), TenantMismatchError],
    [
      'an own toBSON',
      (document) => Object.assign(document, { toBSON: () => ({ tenant_id: 'globex', title: 'x' }) }),
      TenancyViolationError,
    ],
    [
      'an inherited toBSON',
      (document) => Object.setPrototypeOf(document, { toBSON: () => ({ tenant_id: 'globex', title: 'x' }) }),
      TenancyViolationError,
    ],
    ['a function value', (document) => Object.assign(document, { title: () => 'x' }), TenancyViolationError],
  ];

  it.each(tamperings)('are walked and refused again once changed: %s', async (_, change, refusal) => {
    const before = (await stored()).length;
    await expect(acme.insertChanged(change)).rejects.toBeInstanceOf(refusal);
    await expect(acme.insertManyChanged(change)).rejects.toBeInstanceOf(refusal);
    await expect(acme.bulkInsertChanged(change)).rejects.toBeInstanceOf(refusal);
    expect(await stored()).toHaveLength(before);
  });

  it('are refused with a toBSON given as input, own or inherited', async () => {
    const inherited = Object.assign(Object.create({ toBSON: () => ({}) }) as object, { title: 'x' });
    await expect(acme.create({ title: 'x', toBSON: () => ({}) } as never)).rejects.toMatchObject({ code: 'E_VALIDATION' });
    await expect(acme.create(inherited as never)).rejects.toMatchObject({ code: 'E_VALIDATION' });
  });
});
