/**
 * Renders docs/data-model.md from the repository definitions, so the document cannot drift from
 * the code: `pnpm docs:data-model` writes it, and test/docs.test.ts fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import {
  aggregationsDefinition,
  apiKeysDefinition,
  applicationsDefinition,
  auditLogsDefinition,
  billingDefinition,
  clientsDefinition,
  conversationsDefinition,
  eventsDefinition,
  filesDefinition,
  groupsDefinition,
  indexServes,
  messagesDefinition,
  metricsDefinition,
  type RepositoryDefinition,
  settingsDefinition,
  usersDefinition,
} from '../packages/core/src/index.js';

type Definition = RepositoryDefinition<z.ZodObject>;

const groups: Array<[string, Definition[]]> = [
  [
    'Tenant collections',
    [
      usersDefinition({ inactiveTtlSeconds: 31_536_000 }),
      conversationsDefinition,
      messagesDefinition,
      filesDefinition,
      groupsDefinition,
      settingsDefinition,
    ] as Definition[],
  ],
  [
    'Platform collections',
    [clientsDefinition, applicationsDefinition, apiKeysDefinition, billingDefinition, auditLogsDefinition] as Definition[],
  ],
  ['Analytics collections', [eventsDefinition, metricsDefinition, aggregationsDefinition] as Definition[]],
];

function describeType(schema: z.core.$ZodType): string {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'optional':
      return `${describeType(def.innerType as z.core.$ZodType)}?`;
    case 'nullable':
      return `${describeType(def.innerType as z.core.$ZodType)} \\| null`;
    case 'default':
      return describeType(def.innerType as z.core.$ZodType);
    case 'pipe':
      return (def.out as z.core.$ZodType)._zod.def.type === 'transform'
        ? describeType(def.in as z.core.$ZodType)
        : describeType(def.out as z.core.$ZodType);
    case 'union': {
      const options = (def.options as z.core.$ZodType[]).map(describeType);
      if (options.length > 3 || options.includes('JSON value')) return 'JSON value';
      if (options.some((option) => option.startsWith('ObjectId'))) return 'ObjectId';
      if (options.includes('Date')) return 'Date';
      return [...new Set(options)].join(' \\| ');
    }
    case 'custom':
      return 'ObjectId';
    case 'enum':
      return Object.values(def.entries as Record<string, string>)
        .map((value) => `'${value}'`)
        .join(' \\| ');
    case 'array':
      return `${describeType(def.element as z.core.$ZodType)}[]`;
    case 'record':
      return `{ [key]: ${describeType(def.valueType as z.core.$ZodType)} }`;
    case 'object':
      return `{ ${Object.entries(def.shape as Record<string, z.core.$ZodType>)
        .map(([key, value]) => `${key}: ${describeType(value)}`)
        .join(', ')} }`;
    case 'lazy':
      return 'JSON value';
    default:
      return def.type === 'date' ? 'Date' : def.type;
  }
}

function keyOf(key: Record<string, unknown>): string {
  return `\`{ ${Object.entries(key)
    .map(([field, direction]) => `${field}: ${typeof direction === 'string' ? `'${direction}'` : direction}`)
    .join(', ')} }\``;
}

function optionsOf(index: Definition['indexes'][number]): string {
  const options = [
    index.unique && 'unique',
    index.sparse && 'sparse',
    index.expireAfterSeconds !== undefined && `TTL ${index.expireAfterSeconds} s (optional)`,
    index.partialFilterExpression && `partial ${JSON.stringify(index.partialFilterExpression)}`,
  ].filter(Boolean);
  return options.join(', ') || '—';
}

function renderCollection(definition: Definition): string {
  const traits = [
    definition.tenantOwned ? 'tenant-owned (`tenant_id` on every document, every index starts with it)' : 'platform (not tenant-owned)',
    definition.softDelete && 'soft delete (`deleted_at`)',
    definition.versioned && 'optimistic concurrency (`version`)',
    `schema_version ${definition.schemaVersion}`,
  ].filter(Boolean);
  const fields = Object.entries(definition.schema.shape as Record<string, z.core.$ZodType>).map(
    ([name, schema]) => `| \`${name}\` | ${describeType(schema).replaceAll('|', '\\|').replaceAll('\\\\|', '\\|')} |`,
  );
  const system = ['| `_id` | ObjectId |', '| `schema_version` | number |', '| `created_at`, `updated_at` | Date |'];
  if (definition.softDelete) system.push('| `deleted_at` | Date \\| null |');
  if (definition.versioned) system.push('| `version` | number |');
  const indexes = definition.indexes.map((index) => `| \`${index.name}\` | ${keyOf(index.key)} | ${optionsOf(index)} | ${index.purpose} |`);
  const queries = definition.queries.map((shape) => {
    const served = shape.equality.includes('_id')
      ? '`_id_`'
      : definition.indexes
          .filter((index) => indexServes(index, shape))
          .map((index) => `\`${index.name}\``)
          .join(', ');
    const sort = shape.sort ? shape.sort.map(([field, direction]) => `${field} ${direction === 1 ? '↑' : '↓'}`).join(', ') : '—';
    return `| ${shape.name} | ${shape.equality.join(', ')} | ${sort} | ${[...(shape.range ?? []), ...(shape.residual ?? [])].join(', ') || '—'} | ${served || '**none**'} |`;
  });
  return [
    `### \`${definition.collection}\``,
    '',
    traits.join(' · '),
    '',
    '| field | type |',
    '|---|---|',
    ...fields,
    ...system,
    '',
    '| index | key | options | serves |',
    '|---|---|---|---|',
    ...indexes,
    '',
    '| query | equality | sort | range / residual | index |',
    '|---|---|---|---|---|',
    ...queries,
    '',
  ].join('\n');
}

const introduction = `# The data model

<!-- Generated by \`pnpm docs:data-model\` from the repository definitions in packages/core/src/model; do not edit by hand. -->

Every collection of the plan's data architecture, with its fields, its indexes, and the query each
index serves. Each repository declares its query shapes; a test checks that every shape is served
by a declared index (equality fields first, then the sort, then ranges), another records every
query the repositories send during the test suite and fails on any shape not declared, and on a
server with \`explain\` a third checks that no declared shape scans the collection.

Decisions worth knowing:

- **Tenant first.** Every index of a tenant-owned collection starts with \`tenant_id\`: a tenant's
  queries never touch another tenant's index entries, and \`tenant_id\` is the natural shard-key
  prefix, so each query targets one shard. The one exception is the optional TTL index on
  \`users.last_seen\`, because MongoDB's TTL indexes take a single field.
- **Messages are read by conversation, newest first**, through \`{ tenant_id, conversation_id, _id: -1 }\`:
  ObjectIds are time-ordered, so \`_id\` is both the keyset tiebreak and the time order. The shard
  key we recommend for messages is \`{ tenant_id: 1, conversation_id: 1, _id: 1 }\` rather than the
  plan's \`tenant_id + timestamp\`: a timestamp suffix sends all of a large tenant's new messages to
  the last chunk of its range (one hot shard), whereas the conversation component spreads them over
  the tenant's conversations while keeping each conversation's history on one shard.
- **Direct conversations are idempotent** through \`dedupe_key\` (\`direct:<smaller id>:<larger id>\`)
  under a unique \`{ tenant_id, dedupe_key }\` index, which works on every server; a partial unique
  index would be the alternative, but not every MongoDB-compatible server enforces partial indexes.
- **Denormalized fields** (\`conversations.last_message\`, \`messages.thread.reply_count\`) are updated
  with atomic operators (\`$inc\`, a conditional \`$set\`, \`$max\`) in the same call that causes them,
  and \`messages.recountReplies\` recomputes and repairs a count.
- **Read positions, not receipts, at chat scale.** Each participant of a conversation carries
  \`last_read_message_id\` and \`last_read_at\`: marking a conversation read is one forward-only update
  of that array element (its filter matches only an absent or older position), and an unread count is
  a count over \`{ tenant_id, conversation_id, _id: -1 }\` from the position on, bounded by \`max\`
  (default 100), so its cost follows the unread messages, not the group's size. No unread counter is
  maintained: keeping one per member would turn every message into as many writes as the group has
  members. Per-message \`read_by\` receipts are written only in direct conversations and groups up to
  \`receipts.perMessageUpTo\` participants (default 32).
- **A compact message envelope.** Messages are stored without their empty values (\`reactions: []\`,
  \`read_by: []\`, \`deleted_at: null\`), and every read puts them back, so readers see the fields the
  schema lists whatever was stored; filters already treat a missing field as empty (\`deleted_at: null\`
  matches it, \`$push\` creates the array). A 200 B-ciphertext text message is 421 B instead of 463 B
  (1 KB: 1,245 B instead of 1,287 B), plus about 260 B of index entries; \`pnpm bench:envelope\`
  measures it.
- **Content is ciphertext.** \`messages.content.encrypted_data\` and the per-recipient
  \`encrypted_key\` map are opaque; search uses blind-index tokens (\`search_tokens\`), never plaintext.
- **\`schema_version\`** is stamped on every document so migrations can find what to upgrade.
- **\`metrics\`** is a time-series collection (\`timeField: timestamp\`, \`metaField: tenant_id\`) where the
  server supports it and a plain collection with the same API elsewhere.
`;

/** The whole of docs/data-model.md. */
export function renderDataModelDoc(): string {
  const sections = groups.map(([title, definitions]) => [`## ${title}`, '', ...definitions.map(renderCollection)].join('\n'));
  return `${introduction}\n${sections.join('\n')}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../docs/data-model.md', import.meta.url), renderDataModelDoc());
  process.stdout.write('wrote docs/data-model.md\n');
}
