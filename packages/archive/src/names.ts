import { ValidationError } from '@caas-db/core';
import { assertObjectKey } from './targets.js';

const streamPattern = /^(?!manifest)(?!\.)[A-Za-z0-9._-]{1,120}$/;

/**
 * Checks a stream name: one key segment (letters, digits, `._-`, not starting with `.` or `manifest`).
 * @throws {ValidationError}
 */
export function assertStreamName(stream: string): void {
  if (typeof stream !== 'string' || !streamPattern.test(stream))
    throw new ValidationError('stream', [
      {
        path: '',
        message: `${JSON.stringify(stream)} must be 1-120 of [A-Za-z0-9._-], not starting with . or manifest`,
        code: 'invalid_format',
      },
    ]);
}

/**
 * Checks an archive name: an object key prefix (`backups/acme/2026-11-30T120000Z`).
 * @throws {ValidationError}
 */
export function assertArchiveName(name: string): void {
  assertObjectKey(name, 'archive name');
}
