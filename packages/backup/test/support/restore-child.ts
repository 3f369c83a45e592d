/**
 * Runs one restore in its own process, printing a line per restored chunk, so a test can kill it
 * mid-way: `node --import tsx restore-child.ts <uri> <database> <directory> <backup name> [<tenant> remap]`.
 */
import { createLocalKeyProvider, filesystemTarget } from '@caas-db/archive';
import { createDataClient, createDataLayer } from '@caas-db/core';
import { createBackupService } from '../../src/index.js';

const [uri, database, directory, name, tenant, ids] = process.argv.slice(2) as [string, string, string, string, string?, 'remap'?];
const client = createDataClient({ uri, database });
const data = createDataLayer({ client });
const service = createBackupService({
  data,
  target: filesystemTarget(directory, { fsync: false }),
  keyProvider: createLocalKeyProvider({ keys: { k1: Buffer.alloc(32, 9) }, current: 'k1' }),
});
await service.restore({
  name,
  ...(tenant && { tenant }),
  ...(ids && { ids }),
  onProgress: (progress) => process.stdout.write(`progress ${progress.collection} ${progress.documents}\n`),
});
process.stdout.write('done\n');
await client.close();
