/**
 * Routing: which Durable Object holds a topic. Topics are namespaced by tenant, so two tenants'
 * `orders` are different objects. Tenant and topic names cannot hold `:`, so the name is unique.
 */
import type { Env } from "./env.ts";

export function topicObjectName(tenant: string, topic: string): string {
  return `${tenant}:${topic}`;
}

export function topicStub(env: Env, tenant: string, topic: string) {
  return env.TOPIC.get(env.TOPIC.idFromName(topicObjectName(tenant, topic)));
}
