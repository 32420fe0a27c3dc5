/**
 * /mcp: the bus as an MCP server over Streamable HTTP (docs/mcp.md). Stateless: each POST
 * carries one JSON-RPC message (batches are refused) and is answered with JSON by a server built for it,
 * through the official SDK's web-standard transport; no session id is issued, so any isolate
 * answers any request. There is nothing to push between requests, so the optional GET stream is
 * refused with 405 as the transport specification allows, and DELETE (end a session) too.
 *
 * auth() and rateLimit() run before (workers/app.ts): a missing or bad credential is a 401 with
 * the gateway's error body before any MCP message is read. Each tool checks its own scope.
 *
 * @example
 * app.use("/mcp", cors(), auth(), rateLimit());
 * app.route("/mcp", mcpRoutes(VERSION));
 */
import { Hono } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import type { GatewayEnv } from "../gateway-env.ts";

export function mcpRoutes(version: string): Hono<GatewayEnv> {
  const mcp = new Hono<GatewayEnv>();

  mcp.post("/", async (c) => {
    // Loaded on first use: the MCP SDK's modules are evaluated by the first /mcp request of an
    // isolate, not by every isolate's start (docs/decisions/031-mcp-endpoint.md).
    const { answerMcp } = await import("../mcp/endpoint.ts");
    return answerMcp(c, version);
  });

  mcp.on(["GET", "DELETE"], "/", (c) => {
    c.header("Allow", "POST");
    throw new DovetailError(
      "method_not_allowed",
      `${c.req.method} is not allowed on /mcp: this server is stateless and pushes nothing; POST JSON-RPC messages`,
    );
  });
  mcp.all("/", (c) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on /mcp`);
  });
  return mcp;
}
