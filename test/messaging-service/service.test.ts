import { createBlindIndex } from '@caas-db/search';
import { snapshotDatabase } from '@caas-db/testing/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ApiResponse, type RunningService, signJwt, startService, tokenSettings } from './harness.js';

// End to end over a real listening socket: fetch → Fastify → caas-db → the test MongoDB and Redis.

let service: RunningService;
const tokens: Record<string, string> = {};
const index = createBlindIndex({ key: 'a-conversation-search-key-of-32-bytes!!', keyVersion: 1 });
const text = (plaintext: string) => ({
  content: { type: 'text', encrypted_data: Buffer.from(plaintext).toString('base64') },
  search_tokens: index.tokensOf(plaintext),
  search_key_version: 1,
});

/** Per tenant: two users, their direct conversation, messages, a reply and a page cursor, all as the API returned them. */
interface TenantWorld {
  tenant: string;
  users: { id: string }[];
  conversationId: string;
  messageIds: string[];
  replyId: string;
  historyCursor: string;
  searchCursor: string;
}
const world: Record<string, TenantWorld> = {};

const ok = (response: ApiResponse, status: number) => {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  return response.body;
};

async function seed(tenant: string, subjects: [string, string]): Promise<TenantWorld> {
  for (const subject of subjects) tokens[`${tenant}/${subject}`] = await service.token(tenant, subject);
  const [first, second] = subjects.map((subject) => tokens[`${tenant}/${subject}`] as string) as [string, string];
  const users = [
    ok(await service.call(first, 'PUT', '/v1/users/me', { display_name: `${subjects[0]} of ${tenant}` }), 201),
    ok(await service.call(second, 'PUT', '/v1/users/me', { display_name: `${subjects[1]} of ${tenant}` }), 201),
  ];
  const conversation = ok(await service.call(first, 'POST', '/v1/conversations', { type: 'direct', user_id: users[1].id }), 201);
  const messageIds: string[] = [];
  for (const line of ['lunch on friday?', 'the launch plan', 'see you at lunch']) {
    messageIds.push(ok(await service.call(first, 'POST', `/v1/conversations/${conversation.id}/messages`, text(line)), 201).id);
  }
  const reply = ok(await service.call(second, 'POST', `/v1/messages/${messageIds[0]}/replies`, text('friday works')), 201);
  const history = ok(await service.call(first, 'GET', `/v1/conversations/${conversation.id}/messages?limit=2`), 200);
  const tokensQuery = index.queryTokens('lunch').join(',');
  const search = ok(
    await service.call(first, 'GET', `/v1/search/messages?conversation_id=${conversation.id}&tokens=${tokensQuery}&limit=1`),
    200,
  );
  return {
    tenant,
    users,
    conversationId: conversation.id,
    messageIds,
    replyId: reply.id,
    historyCursor: history.next_cursor,
    searchCursor: search.next_cursor,
  };
}

beforeAll(async () => {
  service = await startService({ tenants: ['acme', 'globex'] });
  world.acme = await seed('acme', ['alice', 'bob']);
  world.globex = await seed('globex', ['carol', 'dave']);
});

const acme = () => world.acme as TenantWorld;
const globex = () => world.globex as TenantWorld;

describe('messaging service: health', () => {
  it('answers /health from the library health check, without a token', async () => {
    const health = ok(await service.call(undefined, 'GET', '/health'), 200);
    expect(health.ok).toBe(true);
    expect(typeof health.latency_ms).toBe('number');
  });
});

describe('messaging service: conversations and messages', () => {
  it('pages a conversation history with keyset cursors, each message once, newest first', async () => {
    const alice = tokens['acme/alice'];
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const page = ok(await service.call(alice, 'GET', `/v1/conversations/${acme().conversationId}/messages?limit=2${query}`), 200);
      seen.push(...page.items.map((message: { id: string }) => message.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(seen).toEqual([acme().replyId, ...[...acme().messageIds].reverse()]);
  });

  it('counts replies, reacts once per user and emoji, marks read, and lists the caller’s conversations', async () => {
    const bob = tokens['acme/bob'];
    const [first] = acme().messageIds;
    expect(ok(await service.call(bob, 'POST', `/v1/messages/${first}/reactions`, { emoji: '👍' }), 201)).toEqual({ added: true });
    expect(ok(await service.call(bob, 'POST', `/v1/messages/${first}/reactions`, { emoji: '👍' }), 200)).toEqual({ added: false });
    ok(await service.call(bob, 'POST', `/v1/messages/${first}/read`), 204);
    const message = ok(await service.call(bob, 'GET', `/v1/messages/${first}`), 200);
    expect(message.reply_count).toBe(1);
    expect(message.reactions).toEqual([{ user_id: acme().users[1]?.id, emoji: '👍' }]);
    expect(message.status).toBe('read');
    const replies = ok(await service.call(bob, 'GET', `/v1/messages/${first}/replies`), 200);
    expect(replies.items.map((reply: { id: string }) => reply.id)).toEqual([acme().replyId]);
    const removed = ok(await service.call(bob, 'DELETE', `/v1/messages/${first}/reactions/${encodeURIComponent('👍')}`), 200);
    expect(removed).toEqual({ removed: true });

    const group = ok(
      await service.call(tokens['acme/alice'], 'POST', '/v1/conversations', {
        type: 'group',
        name: 'Launch team',
        member_ids: [acme().users[1]?.id],
      }),
      201,
    );
    const mine = ok(await service.call(bob, 'GET', '/v1/conversations'), 200);
    expect(mine.items.map((conversation: { id: string }) => conversation.id).sort()).toEqual([acme().conversationId, group.id].sort());
  });

  it('soft-deletes a message for its sender only; it leaves the history', async () => {
    const alice = tokens['acme/alice'];
    const sent = ok(await service.call(alice, 'POST', `/v1/conversations/${acme().conversationId}/messages`, text('oops')), 201);
    const refused = await service.call(tokens['acme/bob'], 'DELETE', `/v1/messages/${sent.id}`);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('E_FORBIDDEN');
    ok(await service.call(alice, 'DELETE', `/v1/messages/${sent.id}`), 204);
    expect((await service.call(alice, 'GET', `/v1/messages/${sent.id}`)).status).toBe(404);
    const history = ok(await service.call(alice, 'GET', `/v1/conversations/${acme().conversationId}/messages?limit=100`), 200);
    expect(history.items.map((message: { id: string }) => message.id)).not.toContain(sent.id);
  });

  it('stores a message sent again with its client-chosen id once, also when the copies race', async () => {
    const alice = tokens['acme/alice'];
    const id = '6b0d00000000000000000001';
    const path = `/v1/conversations/${acme().conversationId}/messages`;
    const copies = await Promise.all(Array.from({ length: 4 }, () => service.call(alice, 'POST', path, { id, ...text('exactly once') })));
    expect(copies.map((copy) => [copy.status, copy.body.id])).toEqual(Array.from({ length: 4 }, () => [201, id]));
    expect(ok(await service.call(alice, 'POST', path, { id, ...text('exactly once') }), 201).id).toBe(id);
    const history = ok(await service.call(alice, 'GET', `${path}?limit=100`), 200);
    expect(history.items.filter((message: { id: string }) => message.id === id)).toHaveLength(1);
    // The same id with other content is another message: refused, not overwritten.
    const clash = await service.call(alice, 'POST', path, { id, ...text('something else') });
    expect([clash.status, clash.body.error.code]).toEqual([409, 'E_DUPLICATE_KEY']);
  });

  it('searches messages by blind-index tokens in one of the caller’s conversations, and users by name', async () => {
    const alice = tokens['acme/alice'];
    const lunch = index.queryTokens('lunch').join(',');
    const hits = ok(await service.call(alice, 'GET', `/v1/search/messages?conversation_id=${acme().conversationId}&tokens=${lunch}`), 200);
    expect(hits.items.map((hit: { id: string }) => hit.id).sort()).toEqual([acme().messageIds[0], acme().messageIds[2]].sort());
    const users = ok(await service.call(alice, 'GET', '/v1/search/users?q=bob'), 200);
    expect(users.items.map((user: { external_id: string }) => user.external_id)).toEqual(['bob']);
  });

  it('serves concurrent requests of two tenants: every send stored once, in its own tenant only', async () => {
    const senders = [
      { token: tokens['acme/alice'], conversation: acme().conversationId },
      { token: tokens['globex/carol'], conversation: globex().conversationId },
    ];
    const before = await Promise.all(senders.map((sender) => countHistory(sender.token, sender.conversation)));
    const responses = await Promise.all(
      Array.from({ length: 60 }, (_, index) => {
        const sender = senders[index % 2] as (typeof senders)[number];
        return index % 3 === 0
          ? service.call(sender.token, 'GET', `/v1/conversations/${sender.conversation}/messages?limit=5`)
          : service.call(sender.token, 'POST', `/v1/conversations/${sender.conversation}/messages`, text(`burst ${index}`));
      }),
    );
    expect(responses.map((response) => response.status).filter((status) => status !== 200 && status !== 201)).toEqual([]);
    const sentPer = [0, 1].map(
      (tenant) => Array.from({ length: 60 }, (_, index) => index).filter((index) => index % 2 === tenant && index % 3 !== 0).length,
    );
    const after = await Promise.all(senders.map((sender) => countHistory(sender.token, sender.conversation)));
    expect(after).toEqual([(before[0] as number) + (sentPer[0] as number), (before[1] as number) + (sentPer[1] as number)]);

    // Concurrent first registrations of one subject make one user.
    const newcomer = await service.token('acme', 'erin');
    const registrations = await Promise.all(
      Array.from({ length: 8 }, () => service.call(newcomer, 'PUT', '/v1/users/me', { display_name: 'Erin' })),
    );
    expect(new Set(registrations.map((registration) => registration.body.id)).size).toBe(1);
  });
});

async function countHistory(token: string | undefined, conversationId: string): Promise<number> {
  let count = 0;
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const page = ok(await service.call(token, 'GET', `/v1/conversations/${conversationId}/messages?limit=100${query}`), 200);
    count += page.items.length;
    cursor = page.next_cursor;
  } while (cursor);
  return count;
}

describe('messaging service: tenant isolation through every route', () => {
  it('never lets tenant B read, change or search tenant A’s data, with ids and cursors copied from A’s responses', async () => {
    const carol = tokens['globex/carol'] as string;
    const a = acme();
    const [messageId] = a.messageIds;
    const before = await snapshotDatabase(service.store.data.client);
    const attempts: Array<[string, string, unknown?]> = [
      ['GET', `/v1/users/${a.users[0]?.id}`],
      ['GET', `/v1/conversations/${a.conversationId}`],
      ['GET', `/v1/conversations/${a.conversationId}/messages`],
      ['GET', `/v1/conversations/${a.conversationId}/messages?cursor=${encodeURIComponent(a.historyCursor)}`],
      ['POST', `/v1/conversations/${a.conversationId}/messages`, text('intrusion')],
      ['POST', `/v1/conversations/${a.conversationId}/messages`, { id: messageId, ...text('intrusion') }],
      ['POST', '/v1/conversations', { type: 'direct', user_id: a.users[0]?.id }],
      ['POST', '/v1/conversations', { type: 'group', name: 'heist', member_ids: [a.users[0]?.id] }],
      ['GET', `/v1/messages/${messageId}`],
      ['GET', `/v1/messages/${messageId}/replies`],
      ['POST', `/v1/messages/${messageId}/replies`, text('intrusion')],
      ['POST', `/v1/messages/${messageId}/reactions`, { emoji: '💀' }],
      ['DELETE', `/v1/messages/${messageId}/reactions/${encodeURIComponent('👍')}`],
      ['POST', `/v1/messages/${messageId}/read`],
      ['DELETE', `/v1/messages/${messageId}`],
      ['DELETE', `/v1/messages/${a.replyId}`],
      ['GET', `/v1/search/messages?conversation_id=${a.conversationId}&tokens=${index.queryTokens('lunch').join(',')}`],
    ];
    for (const [method, path, body] of attempts) {
      const response = await service.call(carol, method, path, body);
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(response.body.error.code, `${method} ${path}`).toBe('E_NOT_FOUND');
    }
    // A's message id as the id of B's own new message: refused by the unique _id, A's message untouched.
    const g = globex();
    const taken = await service.call(carol, 'POST', `/v1/conversations/${g.conversationId}/messages`, { id: messageId, ...text('mine') });
    expect([taken.status, taken.body.error.code]).toEqual([409, 'E_DUPLICATE_KEY']);
    // A's cursors on B's own conversation: refused, not followed.
    const history = await service.call(
      carol,
      'GET',
      `/v1/conversations/${g.conversationId}/messages?cursor=${encodeURIComponent(a.historyCursor)}`,
    );
    expect([history.status, history.body.error.code]).toEqual([400, 'E_CURSOR']);
    const lunch = index.queryTokens('lunch').join(',');
    const search = await service.call(
      carol,
      'GET',
      `/v1/search/messages?conversation_id=${g.conversationId}&tokens=${lunch}&cursor=${encodeURIComponent(a.searchCursor)}`,
    );
    expect([search.status, search.body.error.code]).toEqual([400, 'E_CURSOR']);
    // B's user search finds B's users only, though A has users of the same names.
    const users = ok(await service.call(carol, 'GET', '/v1/search/users?q=of'), 200);
    expect(users.items.map((user: { display_name: string }) => user.display_name).sort()).toEqual(['carol of globex', 'dave of globex']);
    expect(await snapshotDatabase(service.store.data.client)).toEqual(before);
  });

  it('refuses a tenant that is not a client of the platform, or is suspended, with 403', async () => {
    const stranger = await service.token('initech', 'peter');
    const response = await service.call(stranger, 'PUT', '/v1/users/me', { display_name: 'Peter' });
    expect([response.status, response.body.error.code]).toEqual([403, 'E_TENANT_NOT_FOUND']);
    await service.store.data.clients.create({ tenant_id: 'umbrella', name: 'Umbrella', region: 'eu-west-1' });
    await service.store.data.clients.suspend('umbrella', 'unpaid invoices');
    const suspended = await service.call(await service.token('umbrella', 'wesker'), 'PUT', '/v1/users/me', { display_name: 'Albert' });
    expect([suspended.status, suspended.body.error.code]).toEqual([403, 'E_TENANT_SUSPENDED']);
    expect(suspended.body.error.message).not.toContain('unpaid');
  });
});

describe('messaging service: authentication', () => {
  it('answers 401 and touches nothing for no token, a tampered tenant claim, an expired token, a foreign key, alg none', async () => {
    const a = acme();
    const valid = tokens['globex/carol'] as string;
    const [header, payload, signature] = valid.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, tenant: 'acme' })).toString('base64url')}.${signature}`;
    const now = Math.floor(Date.now() / 1000);
    const base = { tenant: 'acme', sub: 'alice', iss: tokenSettings.issuer, aud: tokenSettings.audience, iat: now, exp: now + 3600 };
    const expired = signJwt({ ...base, iat: now - 7200, exp: now - 3600 }, tokenSettings.secret);
    const foreignKey = signJwt(base, 'another-secret-of-at-least-32-characters');
    const otherAudience = signJwt({ ...base, aud: 'another-service' }, tokenSettings.secret);
    const { tenant: _, ...withoutTenant } = base;
    const noTenant = signJwt(withoutTenant, tokenSettings.secret);
    const badTenant = signJwt({ ...base, tenant: { $ne: null } }, tokenSettings.secret);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, tenant: 'acme' })).toString('base64url')}.`;
    const bad: Array<[string, string | undefined]> = [
      ['no token', undefined],
      ['tampered tenant claim', tampered],
      ['expired', expired],
      ['signed with another key', foreignKey],
      ['another audience', otherAudience],
      ['no tenant claim', noTenant],
      ['a tenant claim that is not a tenant id', badTenant],
      ['alg none', unsigned],
      ['not a JWT', 'not-a-token'],
    ];
    const routes: Array<[string, string, unknown?]> = [
      ['PUT', '/v1/users/me', { display_name: 'Mallory' }],
      ['GET', `/v1/conversations/${a.conversationId}/messages`],
      ['POST', `/v1/conversations/${a.conversationId}/messages`, text('forged')],
      ['POST', `/v1/messages/${a.messageIds[1]}/reactions`, { emoji: '💀' }],
      ['DELETE', `/v1/messages/${a.messageIds[1]}`],
      ['GET', `/v1/search/users?q=alice`],
    ];
    const before = await snapshotDatabase(service.store.data.client);
    for (const [name, token] of bad) {
      for (const [method, path, body] of routes) {
        const response = await service.call(token, method, path, body);
        expect(response.status, `${name}: ${method} ${path}`).toBe(401);
        expect(response.body.error.code).toBe('E_UNAUTHENTICATED');
        expect(response.headers.get('www-authenticate')).toContain('Bearer');
      }
    }
    const raw = await fetch(`${service.url}/v1/users/me`, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(raw.status).toBe(401);
    expect(await snapshotDatabase(service.store.data.client)).toEqual(before);
  });
});

describe('messaging service: malformed requests', () => {
  it('answers 400 naming the field, and writes nothing', async () => {
    const alice = tokens['acme/alice'];
    const conversation = acme().conversationId;
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', `/v1/conversations/${conversation}/messages`, { content: { type: 'sticker', encrypted_data: 'eA==' } }, 'body.content.type'],
      ['POST', `/v1/conversations/${conversation}/messages`, { content: { type: 'text' } }, 'body.content.encrypted_data'],
      [
        'POST',
        `/v1/conversations/${conversation}/messages`,
        { content: { type: 'text', encrypted_data: 'eA==' }, tenant_id: 'globex' },
        'body',
      ],
      ['POST', `/v1/conversations/${conversation}/messages`, {}, 'body.content'],
      ['POST', `/v1/conversations/${conversation}/messages`, { ...text('x'), search_tokens: ['not a token!'] }, 'search_tokens.0'],
      ['POST', '/v1/conversations/not-an-id/messages', text('x'), 'params.conversationId'],
      ['GET', `/v1/conversations/${conversation}/messages?limit=0`, undefined, 'query.limit'],
      ['PUT', '/v1/users/me', { display_name: '' }, 'body.display_name'],
      ['POST', '/v1/conversations', { type: 'direct' }, 'body.user_id'],
      ['POST', '/v1/conversations', { type: 'channel', name: 'x', member_ids: [] }, 'body.type'],
      ['POST', `/v1/messages/${acme().messageIds[1]}/reactions`, { emoji: '' }, 'body.emoji'],
      ['GET', `/v1/search/messages?tokens=abc`, undefined, 'query.conversation_id'],
      ['POST', `/v1/conversations/${conversation}/messages`, '{"content": {', 'body'],
    ];
    const before = await snapshotDatabase(service.store.data.client);
    for (const [method, path, body, field] of cases) {
      const response = await service.call(alice, method, path, body);
      expect(response.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(['E_VALIDATION', 'E_BAD_REQUEST']).toContain(response.body.error.code);
      expect(response.body.error.issues.map((issue: { path: string }) => issue.path).join(' ')).toContain(field);
    }
    const cursor = await service.call(
      alice,
      'GET',
      `/v1/conversations/${conversation}/messages?cursor=${encodeURIComponent(`${acme().historyCursor}x`)}`,
    );
    expect([cursor.status, cursor.body.error.code]).toEqual([400, 'E_CURSOR']);
    expect(await snapshotDatabase(service.store.data.client)).toEqual(before);
  });
});
