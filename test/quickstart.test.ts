import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('examples/quickstart', () => {
  it('runs end to end and prints what it did', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: new URL('../examples/quickstart/', import.meta.url),
      env: { ...process.env, MONGODB_URI: testEnvironment().mongo.uri },
      timeout: 60_000,
    });
    expect(stdout).toContain('tenant acme (pro, eu-west-1)');
    expect(stdout).toContain('first message: 1 reaction, 1 reply, status read');
    expect(stdout).toContain('newest page of history: "Hi Alice!", "See you then.", "I will bring the slides."');
    expect(stdout).toContain('after a soft delete: 4 visible messages, reply count 0');
    expect(stdout).toContain('acme: alice is "Alice", 2 conversations, 5 messages');
    expect(stdout).toContain('globex: alice is "Alice of Globex", 1 conversations, 1 messages');
    expect(stdout).toContain("globex reading acme's first message by id: not found");
    expect(stdout).toContain('a query with no tenant: refused (TenantContextError)');
  });
});
