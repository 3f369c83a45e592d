import { describe, expectTypeOf, it } from 'vitest';
import type { DataLayer, Message, ObjectId, Page, Projected, StoredDocument, User, userSchema } from '../src/index.js';

/**
 * Type-level specifications, checked by `pnpm typecheck` (part of `pnpm test`); at run time these
 * tests only confirm the module loads.
 */
describe('types flow from the schemas', () => {
  it('stored documents carry the schema fields and the system fields', () => {
    expectTypeOf<User['profile']['display_name']>().toEqualTypeOf<string>();
    expectTypeOf<User['_id']>().toEqualTypeOf<ObjectId>();
    expectTypeOf<User['created_at']>().toEqualTypeOf<Date>();
    expectTypeOf<Message['content']['type']>().toEqualTypeOf<'text' | 'file' | 'image' | 'video' | 'audio' | 'system'>();
    expectTypeOf<StoredDocument<typeof userSchema>>().toEqualTypeOf<User>();
  });

  it('a projection narrows the result to the projected fields and _id', () => {
    type Narrow = Projected<User, { external_id: 1 }>;
    expectTypeOf<Narrow>().toHaveProperty('external_id').toEqualTypeOf<string>();
    expectTypeOf<Narrow>().toHaveProperty('_id').toEqualTypeOf<ObjectId>();
    expectTypeOf<Narrow>().not.toHaveProperty('profile');
    expectTypeOf<Projected<User, Record<never, never>>>().toEqualTypeOf<User>();
    const findWhole = (data: DataLayer) => data.users.findById('64f0c0ffee0000000000c0de');
    const findNarrow = (data: DataLayer) => data.users.findById('64f0c0ffee0000000000c0de', { projection: { last_seen: 1 } });
    expectTypeOf<Awaited<ReturnType<typeof findWhole>>>().toEqualTypeOf<User | null>();
    expectTypeOf<NonNullable<Awaited<ReturnType<typeof findNarrow>>>>().toHaveProperty('last_seen');
    expectTypeOf<NonNullable<Awaited<ReturnType<typeof findNarrow>>>>().not.toHaveProperty('external_id');
  });

  it('lists return keyset pages of typed documents', () => {
    type History = Awaited<ReturnType<DataLayer['messages']['findByConversation']>>;
    expectTypeOf<History>().toEqualTypeOf<Page<Message>>();
  });

  it('create input accepts ids as strings and omits system fields', () => {
    type Input = Parameters<DataLayer['users']['create']>[0];
    expectTypeOf<{ external_id: string; profile: { display_name: string } }>().toExtend<Input>();
    expectTypeOf<Input>().not.toHaveProperty('created_at');
  });
});
