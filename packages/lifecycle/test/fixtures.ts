/** A month of chat data for one tenant, and the policy the purge tests apply to it. */
import type { DataLayer, ObjectId } from '@caas-db/core';
import { DAY_MS, type ManualClock, type RetentionPolicy } from '../src/index.js';
import { cipher, START } from './support.js';

export interface MessageRecord {
  id: ObjectId;
  conversation: ObjectId;
  sender: ObjectId;
  created: Date;
  deleted: Date | null;
}

export interface Month {
  users: ObjectId[];
  conversations: { id: ObjectId; type: 'direct' | 'group' | 'channel'; members: ObjectId[] }[];
  messages: MessageRecord[];
  events: { id: ObjectId; occurred: Date; user: ObjectId }[];
  files: { id: ObjectId; expiry: Date | null; type: 'chat' | 'public' | 'private' }[];
  /** conversations[1] overrides: keep 5 days, no grace override. conversations[4]: keep forever. */
  overrides: Map<string, { keepDays: number | null }>;
}

/** Tenant rules: messages 14 days, soft-deleted content 3 days; channels 20 days; events 10 days. */
export const monthPolicy: RetentionPolicy = {
  messages: { keepDays: 14, deletedContentGraceDays: 3 },
  conversationTypes: { channel: { keepDays: 20 } },
  events: { keepDays: 10 },
  fileShares: { expire: true },
};

/** Days of generated history. */
export const DAYS = 30;

/** Writes a month of data through the repositories, moving the clock day by day. */
export async function generateMonth(data: DataLayer, clock: ManualClock, tenant: string, perDay = 2, days = DAYS): Promise<Month> {
  const repositories = data.forTenant(tenant);
  clock.set(START);
  const users = (
    await repositories.users.createMany(
      Array.from({ length: 6 }, (_, index) => ({
        external_id: `${tenant}-u${index}`,
        profile: { display_name: `${tenant} person ${index}` },
      })),
    )
  ).map((user) => user._id);
  const [a, b, c, d, e, f] = users as [ObjectId, ObjectId, ObjectId, ObjectId, ObjectId, ObjectId];
  const direct = (await repositories.conversations.createDirect([a, b])).conversation;
  const group = await repositories.conversations.createGroup({ type: 'group', ownerId: a, memberIds: [b, c] });
  const channel = await repositories.conversations.createGroup({ type: 'channel', ownerId: a, memberIds: [b, c, d, e, f] });
  const group2 = await repositories.conversations.createGroup({ type: 'group', ownerId: d, memberIds: [e] });
  const forever = await repositories.conversations.createGroup({ type: 'group', ownerId: e, memberIds: [f] });
  const conversations = [
    { id: direct._id, type: 'direct' as const, members: [a, b] },
    { id: group._id, type: 'group' as const, members: [a, b, c] },
    { id: channel._id, type: 'channel' as const, members: [a, b, c, d, e, f] },
    { id: group2._id, type: 'group' as const, members: [d, e] },
    { id: forever._id, type: 'group' as const, members: [e, f] },
  ];
  const messages: MessageRecord[] = [];
  const events: Month['events'] = [];
  for (let day = 0; day < days; day += 1) {
    for (let slot = 0; slot < perDay; slot += 1) {
      clock.set(new Date(START.getTime() + day * DAY_MS + slot * 3_600_000));
      // One insert per slot (the purge is under test here, not messages.create; last_message is
      // brought up to date below, as the purge's own repair leaves it).
      const created = await repositories.messages.createMany(
        conversations.map((conversation, index) => {
          const sender = conversation.members[(day + slot + index) % conversation.members.length] as ObjectId;
          return {
            conversation_id: conversation.id,
            sender_id: sender,
            content: {
              type: 'text' as const,
              encrypted_data: cipher(`${tenant}-${day}-${slot}-${index}`),
              encrypted_preview: cipher('p'),
              encrypted_key: { [String(sender)]: cipher('k') },
            },
          };
        }),
      );
      for (const message of created)
        messages.push({
          id: message._id,
          conversation: message.conversation_id,
          sender: message.sender_id,
          created: message.created_at,
          deleted: null,
        });
      const event = await repositories.events.create({
        type: 'message.sent',
        user_id: users[day % users.length] as ObjectId,
        occurred_at: clock(),
      });
      events.push({ id: event._id, occurred: event.occurred_at, user: event.user_id as ObjectId });
    }
    // Every 5th message of the day before is deleted today.
    clock.set(new Date(START.getTime() + day * DAY_MS + 20 * 3_600_000));
    const yesterday = messages.filter(
      (message) =>
        message.created.getTime() >= START.getTime() + (day - 1) * DAY_MS && message.created.getTime() < START.getTime() + day * DAY_MS,
    );
    for (const [index, message] of yesterday.entries()) {
      if (index % 5 !== 0) continue;
      await repositories.messages.softDelete(message.id);
      message.deleted = clock();
    }
  }
  for (const conversation of conversations) await repositories.messages.verifyLastMessage(conversation.id);
  clock.set(START);
  const files: Month['files'] = [];
  for (const [index, expiryDay] of [5, 25, 31, null].entries()) {
    const file = await repositories.files.create({
      uploader_id: a,
      storage: { provider: 's3', bucket: 'b', key: `${tenant}/${index}` },
      metadata: { filename: `f${index}.png`, mime_type: 'image/png', size: 10, checksum: 'sha256:abcdefgh' },
      sharing:
        expiryDay === null
          ? { type: 'private' }
          : {
              type: index % 2 === 0 ? 'chat' : 'public',
              ...(index % 2 === 0 && { conversation_id: group._id }),
              expiry: new Date(START.getTime() + expiryDay * DAY_MS),
            },
    });
    files.push({
      id: file._id,
      expiry: expiryDay === null ? null : new Date(START.getTime() + expiryDay * DAY_MS),
      type: expiryDay === null ? 'private' : index % 2 === 0 ? 'chat' : 'public',
    });
  }
  const overrides = new Map<string, { keepDays: number | null }>([
    [String(group._id), { keepDays: 5 }],
    [String(forever._id), { keepDays: null }],
  ]);
  return { users, conversations, messages, events, files, overrides };
}

/** What the month policy keeps, computed from the generated records alone. */
export function expectedAfterPurge(month: Month, now: Date) {
  const rule = (conversation: ObjectId) => {
    const type = month.conversations.find((entry) => entry.id.equals(conversation))?.type;
    const override = month.overrides.get(String(conversation));
    const keepDays = override !== undefined ? override.keepDays : type === 'channel' ? 20 : 14;
    return { keepDays, grace: 3 };
  };
  const keptMessages = new Map<string, { purged: boolean }>();
  for (const message of month.messages) {
    const { keepDays, grace } = rule(message.conversation);
    if (keepDays !== null && message.created.getTime() < now.getTime() - keepDays * DAY_MS) continue;
    const purged = message.deleted !== null && message.deleted.getTime() < now.getTime() - grace * DAY_MS;
    keptMessages.set(String(message.id), { purged });
  }
  const keptEvents = new Set(
    month.events.filter((event) => event.occurred.getTime() >= now.getTime() - 10 * DAY_MS).map((event) => String(event.id)),
  );
  const privateFiles = new Set(
    month.files
      .filter((file) => file.type === 'private' || (file.expiry !== null && file.expiry.getTime() < now.getTime()))
      .map((file) => String(file.id)),
  );
  return { keptMessages, keptEvents, privateFiles };
}
