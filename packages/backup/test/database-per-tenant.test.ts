import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalKeyProvider, filesystemTarget } from '@caas-db/archive';
import { createDataLayer } from '@caas-db/core';
import { createTenancy, type IsolationViolation, tenantDatabaseName } from '@caas-db/tenancy';
import { createTestClient, testDatabaseName } from '@caas-db/testing/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBackupService } from '../src/index.js';
import { populateTenant, snapshotTenant } from './support/tenant-data.js';

const prefix = `b${createHash('sha256').update(testDatabaseName()).digest('hex').slice(0, 10)}`;
const client = createTestClient();
const tenancy = createTenancy({ requireActiveTenant: false, audit: 'enforce', strategy: { default: 'database', databasePrefix: prefix } });
const data = createDataLayer({ client, plugins: [tenancy] });
const violations: IsolationViolation[] = [];
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'caas-backup-db-'));
  tenancy.auditor?.on('isolation:violation', (violation) => violations.push(violation));
  for (const tenant of ['acme', 'globex', 'initech']) await tenancy.provisionTenant(tenant);
});

afterAll(async () => {
  for (const tenant of ['acme', 'globex', 'initech']) await data.admin.dropDatabase(tenantDatabaseName(tenant, prefix));
  await rm(directory, { recursive: true, force: true });
});

it('database-per-tenant: backs up a tenant from its own database and restores it into another tenant’s, through the tenancy pipeline', async () => {
  await populateTenant(data, 'acme');
  await populateTenant(data, 'globex');
  const source = await snapshotTenant(client, 'acme', { database: tenantDatabaseName('acme', prefix) });
  const globex = await snapshotTenant(client, 'globex', { database: tenantDatabaseName('globex', prefix) });
  expect(source.messages?.length).toBeGreaterThan(0);
  const backups = createBackupService({
    data,
    target: filesystemTarget(directory, { fsync: false }),
    keyProvider: createLocalKeyProvider({ keys: { k: Buffer.alloc(32, 5) }, current: 'k' }),
    databaseOf: (tenant) => tenantDatabaseName(tenant, prefix),
  });
  const backup = await backups.create({ tenant: 'acme' });
  expect(backup.documents).toBe(Object.values(source).reduce((sum, lines) => sum + lines.length, 0));
  const restored = await backups.restore({ name: backup.name, tenant: 'initech' });
  expect(restored.verification?.conversationsChecked).toBe(2);
  expect(await snapshotTenant(client, 'initech', { database: tenantDatabaseName('initech', prefix), rewriteTo: 'acme' })).toEqual(source);
  expect(await snapshotTenant(client, 'globex', { database: tenantDatabaseName('globex', prefix) })).toEqual(globex);
  // The auditor saw every command: only the change streams (opened outside the pipeline, filtered on
  // fullDocument.tenant_id in the tenant's own database) lack a top-level tenant_id equality.
  expect(violations.filter((violation) => violation.commandName !== 'aggregate')).toEqual([]);
  for (const violation of violations) expect(violation.databaseName).toBe(tenantDatabaseName('acme', prefix));
});
