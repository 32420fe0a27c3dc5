/**
 * POST /v1/topics/{topic}/request: request/reply over HTTP (docs/requests.md). The body is
 * `{ data, timeoutMs?, durable? }` (or `?timeoutMs=` in the query); the answer waits for the
 * reply: `200 { data }`, or the error a socket requester gets (`no_responders` 503, `timeout` 504,
 * `responder_gone` 502, `remote_error` 502 with `remoteCode`). Needs `publish` on the topic, as a
 * request over a socket does.
 *
 * The topic object is asked even when the Directory does not list the topic: responders may
 * serve a topic nobody wrote to, and only the object knows its responders.
 */
import { Hono, type Context } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { requestBodySchema } from "../../protocol/request-schemas.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS } from "../../protocol/requests.ts";
import { settingsFromEnv } from "../../objects/limits.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { permit } from "../middleware/permissions.ts";
import { invalid, jsonBody } from "../request-body.ts";
import { topicStub } from "../topic-stub.ts";

/** `?timeoutMs=`: an integer 1..MAX_REQUEST_TIMEOUT_MS, or absent. */
function queryTimeout(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = Number(raw);
  if (!/^\d+$/.test(raw) || ms < 1 || ms > MAX_REQUEST_TIMEOUT_MS) {
    throw new DovetailError("invalid_field", `timeoutMs: an integer from 1 to ${MAX_REQUEST_TIMEOUT_MS}`);
  }
  return ms;
}

/**
 * Send the request body `raw` (`{ data, timeoutMs?, durable? }`, checked here) to the responders
 * of `topic` and wait for the reply: its data as JSON text. The caller checked `publish`. Shared
 * by the HTTP route and the MCP `request` tool (workers/mcp/tools/requests.ts).
 */
export async function requestReply(c: Context<GatewayEnv>, topic: string, raw: unknown, defaultTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string> {
  const body = requestBodySchema.safeParse(raw);
  if (!body.success) throw invalid(body.error);
  const stub = topicStub(c.env, c.get("tenant"), topic);
  const reply = unwrap(await stub.request(topic, body.data.data, body.data.timeoutMs ?? defaultTimeoutMs, body.data.durable ?? false));
  return reply.dataJson;
}

export function requestRoutes(): Hono<GatewayEnv> {
  const requests = new Hono<GatewayEnv>();

  requests.post("/:topic/request", permit("publish"), async (c) => {
    const topic = c.get("topic");
    const fromQuery = queryTimeout(c.req.query("timeoutMs"));
    const { limits } = settingsFromEnv(c.env);
    // JSON escaping can make the body larger than the data's own JSON text.
    const dataJson = await requestReply(c, topic, await jsonBody(c, limits.maxMessageBytes * 2 + 64 * 1024), fromQuery);
    return c.body(`{"data":${dataJson}}`, 200, { "Content-Type": "application/json" });
  });

  return requests;
}
