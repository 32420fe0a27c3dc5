/**
 * Routing: which Durable Object holds a topic, and which holds a tenant's Directory
 * (protocol/topic-address.ts says how they are named).
 */
import { directoryObjectName, topicObjectName } from "../protocol/topic-address.ts";
import type { Env } from "./env.ts";

export { topicObjectName };

export function topicStub(env: Env, tenant: string, topic: string) {
  return env.TOPIC.get(env.TOPIC.idFromName(topicObjectName(tenant, topic)));
}

export function directoryStub(env: Pick<Env, "DIRECTORY">, tenant: string) {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName(directoryObjectName(tenant)));
}
