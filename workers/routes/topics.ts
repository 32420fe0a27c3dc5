/**
 * /v1/topics/{topic}: the WebSocket endpoint and the plain HTTP API (publish, read, info,
 * retention). Every input is checked here, at the edge, before a topic object is touched.
 * A topic name holding `/` is sent percent-encoded (`%2F`) in these routes.
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import { DovetailError } from "../../protocol/errors.ts";
import { parsePublishMessages, producerSchema, publishMessageSchema } from "../../protocol/frame-schemas.ts";
import { ACK_MODES, PROTOCOL_VERSION, type AckMode, type PublishMessage, type SubscribeFrom } from "../../protocol/frames.ts";
import { settingsFromEnv } from "../../objects/limits.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import type { TopicInfo } from "../../objects/topic.ts";
import { topicUpgradeRequest } from "../../protocol/topic-request.ts";
import { socketGrantFor } from "../../protocol/grant.ts";
import { may, permit } from "../middleware/permissions.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { type ListPage, type ListQuery, MAX_LIST_LIMIT } from "../../objects/directory.ts";
import { patternProblem } from "../../protocol/scopes.ts";
import { DEFAULT_DURABILITY, DURABILITY_LEVELS } from "../../protocol/durability.ts";
import { forgetTopic, topicExists } from "../topic-exists.ts";
import { directoryStub, topicStub } from "../topic-stub.ts";
import { invalid, jsonBody } from "../request-body.ts";

/** Default and largest `limit` for an HTTP read. */
export const DEFAULT_READ_LIMIT = 100;
export const MAX_READ_LIMIT = 1000;
/** Default page size of the topic list. */
export const DEFAULT_LIST_LIMIT = 100;

const settingsBodySchema = z
  .strictObject({
    retention: z
      .strictObject({
        maxAgeMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
        maxMessages: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
        maxBytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
      })
      .optional(),
    durability: z.enum(DURABILITY_LEVELS).optional(),
  })
  .refine((b) => b.retention !== undefined || b.durability !== undefined, { message: "expected retention or durability (or both)" });

const publishBodySchema = z.union([z.object({ messages: z.array(z.unknown()).min(1), producer: producerSchema.optional() }), publishMessageSchema]);

function stubFor(c: Context<GatewayEnv>) {
  const topic = c.get("topic");
  return { topic, stub: topicStub(c.env, c.get("tenant"), topic) };
}

/**
 * Where a read starts, from the `from` query (an offset, `earliest`, `latest`) or `since` (ms since
 * the epoch, or an ISO date). The MCP `read_topic` tool passes its arguments through here too.
 */
export function readStart(since: string | undefined, fromQuery: string | undefined): SubscribeFrom {
  if (since !== undefined) {
    const time = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (!Number.isSafeInteger(time) || time < 0) throw new DovetailError("invalid_field", "since: expected milliseconds since the epoch or an ISO 8601 date");
    return { time };
  }
  const from = fromQuery ?? "earliest";
  if (from === "earliest" || from === "latest") return from;
  if (!/^\d{1,16}$/.test(from) || !Number.isSafeInteger(Number(from))) {
    throw new DovetailError("invalid_field", "from: expected a non-negative integer offset, earliest or latest");
  }
  return Number(from);
}

/** The `limit` of a read: 1..MAX_READ_LIMIT, DEFAULT_READ_LIMIT when absent. */
export function readLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_READ_LIMIT;
  const limit = Number(raw);
  if (!/^\d+$/.test(raw) || limit < 1 || limit > MAX_READ_LIMIT) {
    throw new DovetailError("invalid_field", `limit: expected an integer from 1 to ${MAX_READ_LIMIT}`);
  }
  return limit;
}

/**
 * Publish a body of `POST /v1/topics/{topic}/messages` (checked here: one message or a batch with
 * an optional producer) on `topic`, as the request's credential; the caller checked `publish`.
 * Shared by the HTTP route and the MCP `publish` tool (workers/mcp/tools/topics.ts).
 */
export async function publishBody(c: Context<GatewayEnv>, topic: string, raw: unknown) {
  const body = publishBodySchema.safeParse(raw);
  if (!body.success) throw invalid(body.error);
  const list = "messages" in body.data ? body.data.messages : [body.data];
  const producer = "messages" in body.data ? body.data.producer : undefined;
  const messages = parsePublishMessages(list);
  if (!messages.ok) throw messages.error;
  // The topic applies its per-credential publish limit (the same as for WebSocket frames).
  const credential = c.get("credential");
  const publisher = credential.rate ? { cred: credential.id, rate: credential.rate } : { cred: credential.id };
  return unwrap(await topicStub(c.env, c.get("tenant"), topic).publish(topic, messages.frame as PublishMessage[], producer, publisher));
}

/**
 * Up to `limit` messages of `topic` from `from`, as the JSON text of the read answer
 * (`{messages, next, head, earliest}`); the caller checked `subscribe`. Shared by the HTTP route
 * and the MCP `read_topic` tool.
 */
export async function readMessagesJson(c: Context<GatewayEnv>, topic: string, from: SubscribeFrom, limit: number): Promise<string> {
  // A topic nobody wrote to reads as an empty log, answered here without waking an object.
  if (!(await topicExists(c.env, c.get("tenant"), topic))) {
    if (typeof from === "number" && from > 0) {
      throw new DovetailError("offset_out_of_range", `offset ${from} is past the end of the log (next offset is 0)`, { head: 0 });
    }
    return `{"messages":[],"next":0,"head":0,"earliest":0}`;
  }
  const r = unwrap(await topicStub(c.env, c.get("tenant"), topic).read(topic, from, limit));
  return `{"messages":${r.messagesJson},"next":${r.next},"head":${r.head},"earliest":${r.earliest}}`;
}

/** A topic's info (head, earliest, counts, retention); the caller checked a scope on it. Shared with the MCP resources. */
export async function topicInfo(c: Context<GatewayEnv>, topic: string): Promise<TopicInfo> {
  // A topic nobody wrote to is an empty log with the default retention, answered here.
  if (!(await topicExists(c.env, c.get("tenant"), topic))) {
    return {
      topic,
      head: 0,
      earliest: 0,
      messages: 0,
      bytes: 0,
      lastTime: 0,
      retention: settingsFromEnv(c.env).retention,
      durability: DEFAULT_DURABILITY,
      subscribers: 0,
    };
  }
  return topicStub(c.env, c.get("tenant"), topic).info(topic);
}

/**
 * A page of the tenant's topics, keeping those the credential may publish to, subscribe to or
 * administer. Shared with the MCP resource list (workers/mcp/resources.ts).
 */
export async function visibleTopics(c: Context<GatewayEnv>, query: ListQuery): Promise<ListPage> {
  const page = await directoryStub(c.env, c.get("tenant")).list(query);
  return { topics: page.topics.filter((t) => may(c, ["subscribe", "publish", "admin"], t.name)), cursor: page.cursor };
}

export function topicRoutes(): Hono<GatewayEnv> {
  const topics = new Hono<GatewayEnv>();

  /**
   * WebSocket: the topic object takes the socket over (hibernation API). The credential needs
   * publish or subscribe; the grant tells the object which, and the object checks each frame.
   */
  topics.get("/:topic/ws", permit(["publish", "subscribe", "consume"]), async (c) => {
    const { topic, stub } = stubFor(c);
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new DovetailError("upgrade_required", "this route takes a WebSocket upgrade (Upgrade: websocket)");
    }
    const version = c.req.query("v");
    if (version !== undefined && version !== String(PROTOCOL_VERSION)) {
      throw new DovetailError("unsupported_version", `this server speaks protocol version ${PROTOCOL_VERSION}; asked for ${JSON.stringify(version)}`);
    }
    const acks = c.req.query("acks") ?? "each";
    if (!(ACK_MODES as readonly string[]).includes(acks)) {
      throw new DovetailError("invalid_field", `acks: expected ${ACK_MODES.join(" or ")}; got ${JSON.stringify(acks)}`);
    }
    const grant = socketGrantFor(c.get("credential"), { pub: may(c, "publish", topic), sub: may(c, "subscribe", topic), con: may(c, "consume", topic) });
    // Built from scratch: nothing of the client's request reaches the object (protocol/topic-request.ts).
    return stub.fetch(topicUpgradeRequest({ kind: "socket", topic, hibernate: c.req.query("hibernate") !== "0", grant, acks: acks as AckMode }));
  });

  /** Publish one message (`{data|bytes, key?, headers?}`) or a batch (`{messages:[...], producer?}`). */
  topics.post("/:topic/messages", permit("publish"), async (c) => {
    const { limits } = settingsFromEnv(c.env);
    // base64 and JSON escaping can make the body larger than the payload bytes it carries.
    const result = await publishBody(c, c.get("topic"), await jsonBody(c, limits.maxBatchBytes * 2 + 64 * 1024));
    return c.json(result, result.duplicate ? 200 : 201);
  });

  /** Read from an offset: `?from=N|earliest|latest` or `?since=ms|ISO`, `&limit=1..1000`. */
  topics.get("/:topic/messages", permit("subscribe"), async (c) => {
    return c.body(await readMessagesJson(c, c.get("topic"), readStart(c.req.query("since"), c.req.query("from")), readLimit(c.req.query("limit"))), 200, {
      "Content-Type": "application/json",
    });
  });

  /** Topic info: head, earliest, counts, subscribers, retention. */
  topics.get("/:topic", permit(["subscribe", "publish", "admin"]), async (c) => c.json(await topicInfo(c, c.get("topic"))));

  /**
   * Change settings: `{ "retention"?: { maxAgeMs?, maxMessages?, maxBytes? } (0 = no limit),
   * "durability"?: "sync" | "async" | "memory" }`; an absent field is left as it is.
   */
  topics.patch("/:topic", permit("admin"), async (c) => {
    const { topic, stub } = stubFor(c);
    const body = settingsBodySchema.safeParse(await jsonBody(c, 64 * 1024));
    if (!body.success) throw invalid(body.error);
    return c.json(unwrap(await stub.configure(topic, body.data)));
  });

  /**
   * Delete a topic (admin): its sockets are closed with 4004 after a `topic_deleted` frame, its
   * storage is removed, and a later write creates a fresh topic from offset 0.
   */
  topics.delete("/:topic", permit("admin"), async (c) => {
    const { topic, stub } = stubFor(c);
    const tenant = c.get("tenant");
    if (!(await topicExists(c.env, tenant, topic))) throw new DovetailError("not_found", `no topic ${topic}`);
    const { closedSockets } = await stub.deleteTopic();
    forgetTopic(tenant, topic);
    return c.json({ topic, deleted: true, closedSockets });
  });

  /**
   * The tenant's topics, a page at a time, in name order: `?prefix=&pattern=&cursor=&limit=`.
   * Listing needs no scope of its own: each credential sees the topics it may publish to,
   * subscribe to or administer (a page may thus hold fewer than `limit`; follow `cursor`).
   */
  topics.get("/", async (c) => {
    const prefix = c.req.query("prefix") ?? "";
    if (prefix.length > 200) throw new DovetailError("invalid_field", "prefix: at most 200 characters");
    const pattern = c.req.query("pattern");
    if (pattern !== undefined) {
      const problem = patternProblem(pattern);
      if (problem) throw new DovetailError("invalid_field", `pattern: ${problem}`);
    }
    const cursor = c.req.query("cursor");
    if (cursor !== undefined && cursor.length > 200) throw new DovetailError("invalid_field", "cursor: not a cursor of this list");
    const rawLimit = c.req.query("limit");
    const limit = rawLimit === undefined ? DEFAULT_LIST_LIMIT : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
      throw new DovetailError("invalid_field", `limit: expected an integer from 1 to ${MAX_LIST_LIMIT}`);
    return c.json(await visibleTopics(c, { prefix, ...(pattern !== undefined ? { pattern } : {}), ...(cursor !== undefined ? { after: cursor } : {}), limit }));
  });

  const notAllowed = (c: Context<GatewayEnv>) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on ${new URL(c.req.url).pathname}`);
  };
  topics.all("/:topic/ws", notAllowed);
  topics.all("/:topic/messages", notAllowed);
  topics.all("/:topic", notAllowed);
  topics.all("/", notAllowed);
  return topics;
}
