import type { DataLayer, Page } from '@caas-db/core';

/** Every client in `status`, in tenant-id order. */
export async function tenantsIn(
  data: DataLayer,
  status: 'active' | 'suspended',
): Promise<Array<{ tenant: string; name: string; plan: string; status: string }>> {
  const found: Array<{ tenant: string; name: string; plan: string; status: string }> = [];
  let cursor: string | null = null;
  do {
    const page: Page<{ tenant_id: string; name: string; plan: string; status: string }> = await data.clients.listByStatus(status, {
      limit: 500,
      ...(cursor && { cursor }),
    });
    found.push(...page.items.map((client) => ({ tenant: client.tenant_id, name: client.name, plan: client.plan, status: client.status })));
    cursor = page.nextCursor;
  } while (cursor);
  return found.sort((a, b) => (a.tenant < b.tenant ? -1 : 1));
}

/** The ids of the active tenants. */
export async function activeTenants(data: DataLayer): Promise<string[]> {
  return (await tenantsIn(data, 'active')).map((entry) => entry.tenant);
}
