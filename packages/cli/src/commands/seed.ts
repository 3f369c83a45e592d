import type { CliCommand } from '../command.js';
import { ExitCodes } from '../exit-codes.js';

const integer = (value: string) => Number.parseInt(value, 10);

/** `caas-db seed`. */
export const seedCommand: CliCommand = {
  name: 'seed',
  register(program, run) {
    program
      .command('seed')
      .description('build realistic, deterministic CAAS data through the repositories (rerun the same command to resume)')
      .option('--tenants <n>', 'tenants', integer, 2)
      .option('--users-per-tenant <n>', 'users per tenant', integer, 100)
      .option('--conversations <n>', 'conversations per tenant', integer, 50)
      .option('--messages-per-conversation <n>', 'mean messages per conversation', Number, 20)
      .option('--zipf <s>', 'skew of conversation sizes and user activity (0 = uniform)', Number, 1.1)
      .option('--seed <n>', 'same seed, same data', integer, 1)
      .option('--tenant-prefix <prefix>', 'tenant ids are <prefix>-0001, ...', 'seed')
      .action(
        run(
          async (
            context,
            options: {
              tenants: number;
              usersPerTenant: number;
              conversations: number;
              messagesPerConversation: number;
              zipf: number;
              seed: number;
              tenantPrefix: string;
            },
          ) => {
            // Loaded on demand: the test-server helpers of @caas-db/testing are not needed by other commands.
            const { seed } = await import('@caas-db/testing');
            const { data } = await context.connect();
            const progress = context.output.progress('seed');
            const result = await seed(data, {
              ...options,
              batchSize: context.config.batchSize,
              signal: context.signal,
              onProgress: (event) => progress.update(event.documents, event.total, `${event.tenant} ${event.phase}`),
            });
            progress.stop();
            if (result.interrupted) {
              context.output.note(`Interrupted after ${result.users + result.conversations + result.messages} documents.`);
              context.output.note('Resume with the same command: documents already stored are skipped by _id.');
            }
            context.output.result(
              result,
              () =>
                `Seeded ${result.tenants.length} tenants: ${result.users} users, ${result.conversations} conversations, ${result.messages} messages (${result.replies} replies${result.existing > 0 ? `; ${result.existing} already stored, skipped` : ''}) in ${(result.durationMS / 1000).toFixed(1)} s, ${result.documentsPerSecond} documents/s`,
            );
            return result.interrupted ? ExitCodes.INTERRUPTED : ExitCodes.OK;
          },
        ),
      );
  },
};
