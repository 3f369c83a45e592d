import type { ArchiveReader, ArchiveVerification } from '@caas-db/archive';
import type { DataLayer } from '@caas-db/core';
import { CHANGES_STREAM } from './backup.js';
import { schemaProblems, tenantModelOf } from './model.js';
import { backupMetadataOf } from './restore.js';

/** What `verify` of a backup found. */
export interface BackupVerification extends ArchiveVerification {
  tenant: string;
  /** Documents checked against their model's schema, and the problems found (at most 100). */
  schemaChecked: number;
  schemaProblems: Array<{ collection: string; id: string; problem: string }>;
  /** Per collection: documents the manifest counts and the backup metadata counts agree. */
  countsAgree: boolean;
}

/**
 * Checks a backup without restoring it: the archive (every chunk's hash and authenticated
 * decryption, every stream's count and content hash, the whole-archive hash), the counts the
 * backup recorded, and, when a data layer is given, every document against its model's schema.
 * @throws {ArchiveIntegrityError} when the archive was altered.
 */
export async function verifyTenantBackup(reader: ArchiveReader, data?: DataLayer): Promise<BackupVerification> {
  const metadata = backupMetadataOf(reader);
  const archive = await reader.verify();
  const countsAgree = metadata.collections.every(
    (collection) => reader.manifest.streams[collection]?.count === metadata.counts[collection],
  );
  const problems: BackupVerification['schemaProblems'] = [];
  let schemaChecked = 0;
  if (data) {
    const model = tenantModelOf(data);
    for (const collection of metadata.collections) {
      if (collection === CHANGES_STREAM) continue;
      const definition = model.get(collection);
      if (!definition) continue;
      for await (const document of reader.documents(collection)) {
        schemaChecked += 1;
        for (const problem of schemaProblems(definition, document))
          if (problems.length < 100) problems.push({ collection, id: String(document._id), problem });
      }
    }
  }
  return { ...archive, tenant: metadata.tenant, schemaChecked, schemaProblems: problems, countsAgree };
}
