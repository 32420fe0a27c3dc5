/**
 * Does a topic exist? Asked before every HTTP read, so a read of a name nobody wrote to is
 * answered by the gateway without waking a topic object (in local workerd, waking one creates its
 * SQLite files: issue 18). The tenant's Directory knows (objects/directory.ts); topics seen to
 * exist are remembered in this isolate, so a topic costs one Directory call per isolate, not one
 * per read. Only existence is cached, never absence: a topic created a moment ago is found at once.
 */
import type { Env } from "./env.ts";
import { directoryStub } from "./topic-stub.ts";

/** Names remembered per isolate; the set is cleared when full (a miss only costs a Directory call). */
export const MAX_KNOWN_TOPICS = 50_000;
const known = new Set<string>();

export async function topicExists(env: Pick<Env, "DIRECTORY">, tenant: string, topic: string): Promise<boolean> {
  const key = `${tenant}:${topic}`;
  if (known.has(key)) return true;
  const exists = await directoryStub(env, tenant).exists(topic);
  if (exists) {
    if (known.size >= MAX_KNOWN_TOPICS) known.clear();
    known.add(key);
  }
  return exists;
}

/** Forget a topic (it was deleted through this isolate). */
export function forgetTopic(tenant: string, topic: string): void {
  known.delete(`${tenant}:${topic}`);
}
