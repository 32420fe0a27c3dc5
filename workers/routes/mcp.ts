/**
 * /mcp: the bus as an MCP server over Streamable HTTP (docs/mcp.md). Stateless: each POST
 * carries one JSON-RPC message (or a batch) and is answered with JSON by a server built for it,
 * through the official SDK's web-standard transport; no session id is issued, so any isolate
 * answers any request. There is nothing to push between requests, so the optional GET stream is
 * refused with 405 as the transport specification allows, and DELETE (end a session) too.
 *
 * auth() and rateLimit() run before (workers/app.ts): a missing or bad credential is a 401 with
 * the gateway's error body before any MCP message is read. Each tool checks its own scope.
 *
 * @example
 * app.use("/mcp", auth(), rateLimit());
 * app.route("/mcp", mcpRoutes(VERSION));
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { Hono } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { settingsFromEnv } from "../../objects/limits.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { mcpServer } from "../mcp/server.ts";

export function mcpRoutes(version: string): Hono<GatewayEnv> {
  const mcp = new Hono<GatewayEnv>();

  mcp.post("/", async (c) => {
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined, // stateless
      enableJsonResponse: true,
      // A publish batch at its limit, JSON-escaped, inside a JSON-RPC envelope (as POST .../messages allows).
      maxRequestBodySize: settingsFromEnv(c.env).limits.maxBatchBytes * 2 + 64 * 1024,
    });
    const server = mcpServer(c, version);
    await server.connect(transport);
    return transport.handleRequest(c.req.raw);
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
