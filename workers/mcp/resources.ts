/**
 * MCP resources: what a client may attach to a conversation by URI. One template for now: a
 * topic's recent messages, `dovetail://topics/{topic}/messages` (the topic name percent-encoded,
 * so `/` in it is `%2F`), read as the `read_topic` tool reads the `last` messages, with the same
 * scope (`subscribe` on the topic). The listing offers the topics the credential sees, as
 * `GET /v1/topics` does. A feature adds its templates to RESOURCES (an agent's inbox, say).
 */
import type { Context } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { checkedTopic, requirePermission } from "../middleware/permissions.ts";
import { readMessagesJson, topicInfo, visibleTopics } from "../routes/topics.ts";

/** Messages a topic resource holds: the newest ones. */
export const RECENT_MESSAGES = 20;
/** Resources one listing offers (the first page of the tenant's topics). */
export const MAX_LISTED_RESOURCES = 100;

export interface ResourceEntry {
  uri: string;
  name: string;
  title?: string;
  description?: string;
  mimeType: string;
}

export interface McpResourceTemplate {
  name: string;
  title: string;
  uriTemplate: string;
  description: string;
  mimeType: string;
  /** The template's parameters in `uri`, or null when the URI is not one of this template's. */
  match(uri: string): Record<string, string> | null;
  /** Concrete resources of this template the credential may read. */
  list(c: Context<GatewayEnv>): Promise<ResourceEntry[]>;
  /** The resource's text; throws a DovetailError to refuse. */
  read(c: Context<GatewayEnv>, params: Record<string, string>): Promise<string>;
}

const TOPIC_MESSAGES = /^dovetail:\/\/topics\/([^/]+)\/messages$/;

export function topicMessagesUri(topic: string): string {
  return `dovetail://topics/${encodeURIComponent(topic)}/messages`;
}

export const topicMessages: McpResourceTemplate = {
  name: "topic-messages",
  title: "Recent messages of a topic",
  uriTemplate: "dovetail://topics/{topic}/messages",
  description: `The last ${RECENT_MESSAGES} messages of a topic, as read_topic answers them ({messages, next, head, earliest}). The topic name is percent-encoded.`,
  mimeType: "application/json",
  match(uri) {
    const m = TOPIC_MESSAGES.exec(uri);
    if (!m) return null;
    try {
      return { topic: decodeURIComponent(m[1]!) };
    } catch {
      throw new DovetailError("invalid_topic", "the topic in this URI is not valid percent-encoding");
    }
  },
  async list(c) {
    const page = await visibleTopics(c, { limit: MAX_LISTED_RESOURCES });
    return page.topics.map((t) => ({ uri: topicMessagesUri(t.name), name: t.name, title: `${t.name}: recent messages`, mimeType: "application/json" }));
  },
  async read(c, params) {
    const topic = checkedTopic(params.topic);
    requirePermission(c, "subscribe", topic);
    const info = await topicInfo(c, topic);
    return readMessagesJson(c, topic, Math.max(info.earliest, info.head - RECENT_MESSAGES), RECENT_MESSAGES);
  },
};

export const RESOURCES: readonly McpResourceTemplate[] = [topicMessages];
