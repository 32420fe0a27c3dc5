/**
 * cors(): lets browser clients (the SDK in a page, Durable Streams clients) call the bus from
 * any origin. It runs before authentication, because a preflight (`OPTIONS`) carries no
 * credential by the Fetch standard and reveals nothing; and it stamps every answer, errors
 * included, so a page can read why a request was refused.
 *
 * Credentials travel in `Authorization`, never in cookies, so `*` is safe here (no
 * `Access-Control-Allow-Credentials`).
 */
import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../gateway-env.ts";

/** How long a browser may cache a preflight answer. */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

export const CORS_HEADERS: Readonly<Record<string, string>> = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
  "access-control-allow-headers":
    "content-type, authorization, if-none-match, Stream-Seq, Stream-TTL, Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset",
  "access-control-expose-headers":
    "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, etag, content-type, location, retry-after, x-dovetail-auth",
  // Browser security headers (Durable Streams protocol 12.7).
  "x-content-type-options": "nosniff",
  "cross-origin-resource-policy": "cross-origin",
};

export function cors(): MiddlewareHandler<GatewayEnv> {
  return async function cors(c, next) {
    if (c.req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { ...CORS_HEADERS, "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS) } });
    }
    await next();
    // A 101 carries a WebSocket; its headers are not ours to touch.
    if (c.res.status === 101) return;
    for (const [name, value] of Object.entries(CORS_HEADERS)) {
      if (!c.res.headers.has(name)) c.res.headers.set(name, value);
    }
  };
}
