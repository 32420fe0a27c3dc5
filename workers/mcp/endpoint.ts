/**
 * One MCP request answered: a stateless transport (the official SDK's web-standard Streamable
 * HTTP transport, JSON answers, no session) connected to a server built for this request's
 * credential. Imported lazily by workers/routes/mcp.ts, so the SDK is evaluated only where MCP
 * is used.
 *
 * The body is read here, as every route reads one (`jsonBody`: size checked before reading,
 * strict UTF-8, `batch_too_large` / `invalid_utf8` / `bad_frame`), and handed to the transport.
 * A JSON-RPC batch (an array) is refused: MCP dropped batching in its 2025-06-18 revision, and a
 * batch would let one request, counted once by the rate limit, carry up to a hundred calls.
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Context } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { settingsFromEnv } from "../../objects/limits.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { jsonBody } from "../request-body.ts";
import { mcpServer } from "./server.ts";

export async function answerMcp(c: Context<GatewayEnv>, version: string): Promise<Response> {
  // A publish batch at its limit, JSON-escaped, inside a JSON-RPC envelope (as POST .../messages allows).
  const body = await jsonBody(c, settingsFromEnv(c.env).limits.maxBatchBytes * 2 + 64 * 1024);
  if (Array.isArray(body)) {
    throw new DovetailError("invalid_field", "a POST to /mcp carries one JSON-RPC message: batches are not accepted (MCP 2025-06-18 has none)");
  }
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined, // stateless: any isolate answers any request
    enableJsonResponse: true,
  });
  await mcpServer(c, version).connect(transport);
  return transport.handleRequest(c.req.raw, { parsedBody: body });
}
