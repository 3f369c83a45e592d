import { createHash } from 'node:crypto';
import { BSON, type Document } from '@caas-db/core';

/**
 * A document as the archive stores it: canonical Extended JSON v2 on one line (every BSON type
 * kept: Int32 vs Double vs Long, Decimal128, dates, binary).
 */
export function canonicalLine(document: Document): string {
  return BSON.EJSON.stringify(document, { relaxed: false });
}

/**
 * Hashes documents the way a stream's `contentSha256` is computed (each canonical line followed by
 * `\n`, in order), so data read back from a database can be compared with a manifest.
 */
export function contentHasher(): { update(document: Document): void; digest(): string } {
  const hash = createHash('sha256');
  return {
    update(document) {
      hash.update(`${canonicalLine(document)}\n`);
    },
    digest: () => hash.digest('hex'),
  };
}
