/**
 * The repository reads that consult the cache (core's `cachedRead` call sites): `findById` of every
 * repository, custom ones included, and these list reads of the data model. A method outside it
 * would never be cached, so `createCache` refuses it rather than accept it silently.
 */
export const cacheableMethods: readonly string[] = [
  '<collection>.findById',
  'users.findByExternalId',
  'conversations.listForUser',
  'messages.findByConversation',
  'clients.findByTenantId',
];

/** True when `method` (`<collection>.<method>`) reads through the cache. */
export function isCacheableMethod(method: string): boolean {
  return method.endsWith('.findById') || cacheableMethods.includes(method);
}

/** The refusal of an uncacheable method, listing the cacheable ones. */
export const uncacheableMethodMessage = `is not cacheable (cacheable: ${cacheableMethods.join(', ')})`;
