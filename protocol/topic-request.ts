/**
 * The only HTTP requests a Topic object's `fetch()` takes: WebSocket upgrades that the gateway
 * builds from scratch. Both sides use this module: the gateway calls {@link topicUpgradeRequest},
 * the object {@link readTopicUpgrade}.
 *
 * Why from scratch: the gateway once forwarded the client's own upgrade request with a header
 * added, so a client that sent an internal header itself (`X-Dovetail-Stream-Wait`) was taken for
 * the gateway, and its socket skipped every permission and limit (issue 18). Now no byte of the
 * client's request reaches the object: the URL, its parameters and the headers are all written
 * here, from values the gateway checked. Everything else the gateway asks of a topic is RPC.
 *
 * @example
 * const res = await stub.fetch(topicUpgradeRequest({ kind: "socket", topic, hibernate: true, grant }));
 */
import { ACK_MODES, type AckMode } from "./frames.ts";
import { socketGrantSchema, type SocketGrant } from "./grant.ts";

/** What the gateway asks a topic object for. */
export type TopicUpgrade =
  /** A client's WebSocket, with what its credential may do on this topic. */
  | { kind: "socket"; topic: string; hibernate: boolean; grant: SocketGrant; acks?: AckMode }
  /** Durable Streams: the gateway itself waits for data after offset `after` (long-poll, SSE). */
  | { kind: "stream-wait"; topic: string; after: number };

/** Host of internal URLs: never resolved, a Durable Object stub ignores it. */
const INTERNAL_ORIGIN = "https://topic.internal";

/** The upgrade request the gateway sends a topic object's stub. */
export function topicUpgradeRequest(upgrade: TopicUpgrade): Request {
  const url = new URL(`/${upgrade.kind}`, INTERNAL_ORIGIN);
  url.searchParams.set("topic", upgrade.topic);
  if (upgrade.kind === "socket") {
    url.searchParams.set("hibernate", upgrade.hibernate ? "1" : "0");
    url.searchParams.set("grant", JSON.stringify(upgrade.grant));
    if (upgrade.acks && upgrade.acks !== "each") url.searchParams.set("acks", upgrade.acks);
  } else {
    url.searchParams.set("after", String(upgrade.after));
  }
  return new Request(url, { headers: { Upgrade: "websocket" } });
}

/** Read what {@link topicUpgradeRequest} wrote; `null` for anything else. */
export function readTopicUpgrade(request: Request): TopicUpgrade | null {
  const url = new URL(request.url);
  const topic = url.searchParams.get("topic");
  if (!topic) return null;
  if (url.pathname === "/stream-wait") {
    const after = Number(url.searchParams.get("after"));
    return Number.isSafeInteger(after) && after >= 0 ? { kind: "stream-wait", topic, after } : null;
  }
  if (url.pathname !== "/socket") return null;
  let grant: unknown;
  try {
    grant = JSON.parse(url.searchParams.get("grant") ?? "");
  } catch {
    return null;
  }
  const parsed = socketGrantSchema.safeParse(grant);
  if (!parsed.success) return null;
  const acks = url.searchParams.get("acks") ?? "each";
  if (!(ACK_MODES as readonly string[]).includes(acks)) return null;
  return { kind: "socket", topic, hibernate: url.searchParams.get("hibernate") !== "0", grant: parsed.data, acks: acks as AckMode };
}
