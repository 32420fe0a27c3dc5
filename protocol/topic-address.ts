/**
 * How topics and their tenants map to Durable Object names. Topics are namespaced by tenant, so
 * two tenants' `orders` are different objects; tenant and topic names cannot hold `:`, so the
 * name `tenant:topic` is unique and splits back unambiguously. A topic object reads its own
 * address from `ctx.id.name`.
 */

/** Durable Object name of a tenant's topic. */
export function topicObjectName(tenant: string, topic: string): string {
  return `${tenant}:${topic}`;
}

/** Tenant and topic of a topic object's name, or null when it is not one. */
export function parseTopicObjectName(name: string | undefined): { tenant: string; topic: string } | null {
  const i = name?.indexOf(":") ?? -1;
  if (name === undefined || i <= 0 || i === name.length - 1) return null;
  return { tenant: name.slice(0, i), topic: name.slice(i + 1) };
}

/** Durable Object name of a tenant's Directory. */
export function directoryObjectName(tenant: string): string {
  return tenant;
}
