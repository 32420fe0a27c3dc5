/**
 * requestLog(): a request id for every request and socket upgrade, and one structured log line
 * when the answer leaves (docs/observability.md, "Logs").
 *
 * - The id is made here (never taken from the client: no client-writable header is an internal
 *   signal) and answered in `X-Request-Id`, so a client can quote it.
 * - The line says method, path (never the query: `?token=` carries credentials on upgrades),
 *   status, duration, whether it was a WebSocket upgrade, the tenant and credential id once known
 *   (an id names a key or token; it is not the secret), the error code of a refusal, and the trace
 *   id of a W3C `traceparent` the client sent. Level: `info` below 400, `warn` for 4xx, `error`
 *   for 5xx.
 *
 * @example
 * app.use("*", requestLog());
 */
import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../gateway-env.ts";
import { log } from "../log.ts";

/** The response header that carries the request id. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/** `traceparent` (W3C Trace Context level 1): version, trace id, parent id, flags. */
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function requestLog(): MiddlewareHandler<GatewayEnv> {
  return async function requestLog(c, next) {
    const started = Date.now();
    const rid = crypto.randomUUID();
    c.set("requestId", rid);
    await next();
    const status = c.res.status;
    const upgrade = c.req.header("Upgrade")?.toLowerCase() === "websocket";
    const fields: Record<string, unknown> = { rid, method: c.req.method, path: new URL(c.req.url).pathname, status, ms: Date.now() - started };
    if (upgrade) fields.upgrade = true;
    const credential = c.get("credential");
    if (credential) {
      fields.tenant = credential.tenant;
      fields.cred = credential.id;
    }
    const code = c.get("errorCode");
    if (code) fields.code = code;
    const trace = TRACEPARENT.exec(c.req.header("traceparent") ?? "")?.[1];
    if (trace) fields.trace = trace;
    log(c.env, status >= 500 ? "error" : status >= 400 || code ? "warn" : "info", upgrade ? "socket" : "request", fields);
    // A 101 answer's headers are the upgrade's; other answers may be immutable (a fetched Response).
    try {
      c.res.headers.set(REQUEST_ID_HEADER, rid);
    } catch {
      // Immutable headers: the id is in the log line only.
    }
  };
}
