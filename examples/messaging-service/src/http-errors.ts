import { CaasDbError } from '@caas-db/core';

/** The request carries no valid bearer token. Nothing was read or written. */
export class UnauthenticatedError extends CaasDbError {
  readonly code = 'E_UNAUTHENTICATED';
}

/** The caller is authenticated but may not do this (e.g. delete someone else's message). */
export class ForbiddenError extends CaasDbError {
  readonly code = 'E_FORBIDDEN';
}

/** The token's subject has no user in its tenant yet: `PUT /v1/users/me` registers it. */
export class NotRegisteredError extends CaasDbError {
  readonly code = 'E_NOT_REGISTERED';

  constructor() {
    super('The authenticated subject has no user yet: register it with PUT /v1/users/me');
  }
}
