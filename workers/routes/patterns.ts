/**
 * /v1/patterns: pattern subscriptions (docs/patterns.md, decision 030). `GET /v1/patterns/ws?pattern=…`
 * takes a WebSocket that delivers the messages of every topic the pattern matches and the
 * credential may subscribe to. Each socket gets a PatternFeed object of its own; the gateway
 * checks the pattern and the credential, and builds the upgrade from scratch (decision 022).
 */
import { Hono } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { PROTOCOL_VERSION } from "../../protocol/frames.ts";
import { socketGrantFor } from "../../protocol/grant.ts";
import { patternUpgradeRequest } from "../../protocol/pattern-request.ts";
import { patternProblem } from "../../protocol/scopes.ts";
import type { GatewayEnv } from "../gateway-env.ts";

export function patternRoutes(): Hono<GatewayEnv> {
  const patterns = new Hono<GatewayEnv>();

  patterns.get("/ws", async (c) => {
    const pattern = c.req.query("pattern");
    const problem = patternProblem(pattern);
    if (problem) throw new DovetailError("invalid_field", `pattern: ${problem}`);
    const credential = c.get("credential");
    // Only the patterns of `subscribe` scopes: a pattern broader than them matches only what they allow.
    const scopes = credential.scopes.filter((s) => s.action === "subscribe").map((s) => s.pattern);
    if (scopes.length === 0) throw new DovetailError("forbidden", "this credential may not subscribe to any topic (it needs a subscribe scope)");
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      throw new DovetailError("upgrade_required", "this route takes a WebSocket upgrade (Upgrade: websocket)");
    }
    const version = c.req.query("v");
    if (version !== undefined && version !== String(PROTOCOL_VERSION)) {
      throw new DovetailError("unsupported_version", `this server speaks protocol version ${PROTOCOL_VERSION}; asked for ${JSON.stringify(version)}`);
    }
    const grant = socketGrantFor(credential, { pub: false, sub: true, con: false });
    const feed = c.env.PATTERN_FEED.get(c.env.PATTERN_FEED.newUniqueId());
    return feed.fetch(patternUpgradeRequest({ tenant: c.get("tenant"), pattern: pattern as string, scopes, grant }));
  });
  patterns.all("/ws", (c) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on /v1/patterns/ws`);
  });

  return patterns;
}
