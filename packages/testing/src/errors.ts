import { CaasDbError } from '@caas-db/core';

/** A test server could not be found or started. The message says what to install or set. */
export class TestServerError extends CaasDbError {
  readonly code = 'E_TEST_SERVER';
}
