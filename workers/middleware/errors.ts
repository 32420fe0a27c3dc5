/**
 * The gateway's one error shape: every failure leaves as `{ "error": { code, message, ... } }`
 * with the status of its code (protocol/errors.ts) and the headers a protocol asks for from the
 * error's details (`Retry-After`; the Durable Streams headers, workers/streams-reply.ts). A failed
 * WebSocket upgrade is answered the way a browser can read it: the upgrade succeeds, one `error`
 * frame explains, and the socket is closed with code 4000 + the HTTP status (4400, 4401, 4403,
 * 4404, 4429, 4500).
 */
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { upgradeRefusalCloseCode } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { encodeErrorFrame } from "../../protocol/frames.ts";
import { knownError } from "../../objects/rpc-result.ts";
import { streamErrorHeaders } from "../streams-reply.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { log } from "../log.ts";

export function errorResponse(c: Context, error: DovetailError): Response {
  (c as Context<GatewayEnv>).set("errorCode", error.code);
  const isUpgrade = c.req.header("Upgrade")?.toLowerCase() === "websocket";
  if (isUpgrade && error.code !== "upgrade_required") return refuseUpgrade(error);
  const headers = streamErrorHeaders(error);
  if (error.details.retryAfterMs !== undefined) headers["Retry-After"] = String(Math.max(1, Math.ceil(error.details.retryAfterMs / 1000)));
  return c.json(error.toBody(), error.status as 400, headers);
}

function refuseUpgrade(error: DovetailError): Response {
  const pair = new WebSocketPair();
  const server = pair[1];
  server.accept();
  server.send(encodeErrorFrame(error));
  server.close(upgradeRefusalCloseCode(error.status), error.message.slice(0, 120));
  return new Response(null, { status: 101, webSocket: pair[0] });
}

/**
 * Hono error handler: typed errors keep their code; anything else is `internal` and logged. A
 * topic whose storage filled up while committing is reset by the runtime, and the SQLite error
 * reaches the gateway as the RPC's exception: `knownError` makes it `storage_full` (507).
 */
export const onError: ErrorHandler<GatewayEnv> = (err, c) => {
  const known = knownError(err);
  if (known) {
    if (known.code === "storage_full" && !(err instanceof DovetailError)) log(c.env, "error", "storage full", { rid: c.get("requestId"), error: err });
    return errorResponse(c, known);
  }
  log(c.env, "error", "unexpected error", { rid: c.get("requestId"), error: err });
  return errorResponse(c, new DovetailError("internal", "internal error"));
};

export const notFound: NotFoundHandler = (c) => errorResponse(c, new DovetailError("not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
