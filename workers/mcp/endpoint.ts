/**
 * One MCP request answered: a stateless transport (the official SDK's web-standard Streamable
 * HTTP transport, JSON answers, no session) connected to a server built for this request's
 * credential. Imported lazily by workers/routes/mcp.ts, so the SDK is evaluated only where MCP
 * is used.
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Context } from "hono";
import { settingsFromEnv } from "../../objects/limits.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { mcpServer } from "./server.ts";

export async function answerMcp(c: Context<GatewayEnv>, version: string): Promise<Response> {
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined, // stateless: any isolate answers any request
    enableJsonResponse: true,
    // A publish batch at its limit, JSON-escaped, inside a JSON-RPC envelope (as POST .../messages allows).
    maxRequestBodySize: settingsFromEnv(c.env).limits.maxBatchBytes * 2 + 64 * 1024,
  });
  await mcpServer(c, version).connect(transport);
  return transport.handleRequest(c.req.raw);
}
