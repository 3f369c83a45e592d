/** The field that holds a document's tenant. */
export const TENANT_FIELD = 'tenant_id';
