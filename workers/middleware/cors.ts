/**
 * cors(): lets browser clients (the SDK in a page, Durable Streams clients) call the bus from
 * any origin. Hono's own CORS middleware, configured with the headers the bus and the Durable
 * Streams protocol use. It runs before authentication, because a preflight (`OPTIONS`) carries
 * no credential by the Fetch standard and reveals nothing; and every answer, errors included,
 * carries the CORS headers, so a page can read why a request was refused.
 *
 * Credentials travel in `Authorization`, never in cookies, so `*` is safe here (no
 * `Access-Control-Allow-Credentials`).
 *
 * The two browser security headers of Durable Streams protocol 12.7 are added by a few lines of
 * our own: Hono's secureHeaders() also sets a dozen headers the protocol does not ask for.
 */
import type { MiddlewareHandler } from "hono";
import { cors as honoCors } from "hono/cors";
import type { GatewayEnv } from "../gateway-env.ts";

/** How long a browser may cache a preflight answer. */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** Request headers a page may send: ours, the Durable Streams protocol's and MCP's. */
const ALLOW_HEADERS = [
  "content-type",
  "authorization",
  "if-none-match",
  "Stream-Seq",
  "Stream-TTL",
  "Stream-Expires-At",
  "Stream-Closed",
  "Producer-Id",
  "Producer-Epoch",
  "Producer-Seq",
  "Stream-Forked-From",
  "Stream-Fork-Offset",
  "Stream-Fork-Sub-Offset",
  // MCP's Streamable HTTP transport (docs/mcp.md): browser-based MCP clients send these.
  "mcp-protocol-version",
  "mcp-session-id",
  "last-event-id",
];
/** Response headers a page may read. */
const EXPOSE_HEADERS = [
  "x-request-id",
  "Stream-Next-Offset",
  "Stream-Cursor",
  "Stream-Up-To-Date",
  "Stream-Closed",
  "Stream-TTL",
  "Stream-Expires-At",
  "Stream-SSE-Data-Encoding",
  "Producer-Epoch",
  "Producer-Seq",
  "Producer-Expected-Seq",
  "Producer-Received-Seq",
  "etag",
  "content-type",
  "location",
  "retry-after",
  "x-dovetail-auth",
];
/** Durable Streams protocol 12.7. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = { "x-content-type-options": "nosniff", "cross-origin-resource-policy": "cross-origin" };

export function cors(): MiddlewareHandler<GatewayEnv> {
  const allowCors = honoCors({
    origin: "*",
    allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    allowHeaders: ALLOW_HEADERS,
    exposeHeaders: EXPOSE_HEADERS,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
  });
  return async function cors(c, next) {
    // A preflight is answered by Hono's middleware itself (it returns the 204).
    return allowCors(c, async () => {
      await next();
      // A 101 carries a WebSocket; its headers are not ours to touch.
      if (c.res.status === 101) return;
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) if (!c.res.headers.has(name)) c.res.headers.set(name, value);
    });
  };
}
