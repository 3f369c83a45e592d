/**
 * A vitest setup file: runs the repository suites of packages/core/test/model with the tenancy
 * plugin, under the strategy named by CAAS_DB_TEST_TENANCY (`shared` or `database`), and the
 * isolation auditor in enforce mode.
 */
import { createHash } from 'node:crypto';
import { createTenancy } from '@caas-db/tenancy';
import { useTestPlugins } from '@caas-db/testing/vitest';

/** The tenants the repository suites use. */
const SUITE_TENANTS = ['acme', 'globex'];

const strategy = process.env.CAAS_DB_TEST_TENANCY;
if (strategy !== 'shared' && strategy !== 'database') throw new Error(`CAAS_DB_TEST_TENANCY must be shared or database, not ${strategy}`);

useTestPlugins((databaseName) => {
  // Tenant databases are per test file, like the file's own database.
  const prefix = `t${createHash('sha256').update(databaseName).digest('hex').slice(0, 10)}`;
  const tenancy = createTenancy({
    requireActiveTenant: false,
    audit: 'enforce',
    strategy: strategy === 'database' ? { default: 'database', databasePrefix: prefix } : {},
  });
  return {
    plugins: [tenancy],
    provision: async () => {
      if (strategy === 'database') for (const tenant of SUITE_TENANTS) await tenancy.provisionTenant(tenant);
    },
    ownsDatabase: (name) => name.startsWith(`${prefix}_`),
  };
});
