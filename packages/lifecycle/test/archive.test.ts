import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArchiveIntegrityError, createLocalKeyProvider, filesystemTarget, listArchives } from '@caas-db/archive';
import { afterAll, describe, expect, it } from 'vitest';
import { DAY_MS } from '../src/index.js';
import { cipher, START, setupLifecycle, strategies } from './support.js';

const directory = await mkdtemp(join(tmpdir(), 'caas-lifecycle-archive-'));
afterAll(() => rm(directory, { recursive: true, force: true }));
const keyProvider = createLocalKeyProvider({ keys: { k1: randomBytes(32) }, current: 'k1' });

describe.each(strategies)('archive before purge (%s strategy)', (strategy) => {
  const tenant = `arch-${strategy}`;
  const target = filesystemTarget(join(directory, strategy));
  const setup = setupLifecycle(strategy, [tenant], { batchSize: 4, archive: { target, keyProvider } });
  const { data, lifecycle, clock } = setup;

  it('writes each batch as an encrypted, checksummed archive before removing it, and reads it back by time range', async () => {
    const repositories = data.forTenant(tenant);
    const owner = await repositories.users.create({ external_id: 'owner', profile: { display_name: 'Owner' } });
    const conversation = await repositories.conversations.createGroup({ type: 'group', ownerId: owner._id });
    const sent = [];
    for (let day = 0; day < 10; day += 1) {
      clock.set(new Date(START.getTime() + day * DAY_MS));
      sent.push(
        await repositories.messages.create({
          conversation_id: conversation._id,
          sender_id: owner._id,
          content: { type: 'text', encrypted_data: cipher(`d${day}`) },
        }),
      );
    }
    await lifecycle.policies.set(tenant, { messages: { keepDays: 5, archive: true } });
    clock.set(new Date(START.getTime() + 10 * DAY_MS));
    const report = await lifecycle.purge(tenant);
    expect(report.counts.messages).toBe(5);
    expect((await setup.raw(tenant, 'messages')).map((message) => String(message._id))).toEqual(
      sent.slice(5).map((message) => String(message._id)),
    );

    const archives = await listArchives(target, `lifecycle/${tenant}/messages/`);
    expect(archives.map((archive) => archive.documents)).toEqual([4, 1]);
    const all = [];
    for await (const document of lifecycle.archive.read(tenant, { from: START, to: clock() })) all.push(document);
    expect(all.map((document) => String(document._id))).toEqual(sent.slice(0, 5).map((message) => String(message._id)));
    expect(all[0]?.content.encrypted_data).toBe(cipher('d0'));
    const some = [];
    for await (const document of lifecycle.archive.read(tenant, {
      from: new Date(START.getTime() + DAY_MS),
      to: new Date(START.getTime() + 3 * DAY_MS),
    }))
      some.push(document);
    expect(some.map((document) => String(document._id))).toEqual(sent.slice(1, 3).map((message) => String(message._id)));
    // Nothing in the target is plaintext: the ciphertexts of the messages appear in no stored object.
    const files = (await readdir(join(directory, strategy), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
    expect(files.some((file) => file.name === 'manifest.json')).toBe(true);
    for (const file of files) expect((await readFile(join(file.parentPath, file.name))).includes(cipher('d0'))).toBe(false);
  });

  it('detects a tampered archive when reading back', async () => {
    const [first] = await listArchives(target, `lifecycle/${tenant}/messages/`);
    const chunks = (await target.list(`${first?.name}/messages/`)).filter((key) => key.endsWith('.chunk'));
    const key = chunks[0] ?? '';
    const bytes = Buffer.from(await target.get(key));
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 1;
    await target.put(key, bytes);
    await expect(async () => {
      for await (const _ of lifecycle.archive.read(tenant, { from: START, to: clock() })) void _;
    }).rejects.toBeInstanceOf(ArchiveIntegrityError);
  });
});
