/**
 * The bus as an MCP server, built for one request: the official SDK's low-level `Server` with
 * handlers over our registries (workers/mcp/tools/, workers/mcp/resources.ts), bound to the
 * request's Hono context, so every call runs as the credential auth() verified. Stateless: no
 * session, nothing kept between requests (docs/decisions/031-mcp-endpoint.md).
 *
 * Errors: a tool that refuses answers a tool result with `isError: true` whose text and
 * `structuredContent` are the gateway's error body, `{"error":{"code","message",...}}` — the
 * model sees why, with our code. Arguments of the wrong type are such a result too
 * (`invalid_field`), as MCP asks (a model can correct them). An unknown tool or resource, and a
 * refused resource read, are JSON-RPC errors whose `data` is the error body's `error`.
 */
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import {
  type CallToolResult,
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { Context } from "hono";
import { DovetailError } from "../../protocol/errors.ts";
import { knownError } from "../../objects/rpc-result.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { RESOURCES } from "./resources.ts";
import type { McpTool } from "./tool.ts";
import { TOOLS } from "./tools/index.ts";

const TOOLS_BY_NAME: ReadonlyMap<string, McpTool> = new Map(TOOLS.map((t) => [t.name, t]));
const TOOL_LIST = TOOLS.map((t) => ({
  name: t.name,
  title: t.title,
  description: t.description,
  inputSchema: t.inputSchema,
  ...(t.hints ? { annotations: { title: t.title, ...t.hints } } : {}),
}));

const INSTRUCTIONS =
  "Dovetail is an agent message bus. Topics are durable ordered logs: publish to them and read them by offset. " +
  "Agents register in a registry and find each other by capability. Request/reply asks whoever serves a topic. " +
  "Consumer groups hand each message of a topic to one member: consume jobs, then ack them. " +
  "Errors carry a stable code (forbidden, invalid_field, no_responders, not_held, ...).";

/**
 * The SDK's Server validates with a JSON Schema validator only what a client answers to
 * elicitation, which this server never asks for; this one refuses, so Ajv (which compiles
 * schemas with `new Function`, not allowed in Workers) is never constructed.
 */
const NO_ELICITATION: jsonSchemaValidator = {
  getValidator: () => () => ({ valid: false, data: undefined, errorMessage: "this server asks for no elicitation" }),
};

/** Our error as a DovetailError: typed ones keep their code, anything else is `internal` (and logged). */
function asDovetailError(error: unknown): DovetailError {
  const known = knownError(error);
  if (known) return known;
  console.error("mcp: unexpected error", error);
  return new DovetailError("internal", "internal error");
}

function toolError(error: DovetailError): CallToolResult {
  const body = error.toBody();
  return { isError: true, content: [{ type: "text", text: JSON.stringify(body) }], structuredContent: body as unknown as Record<string, unknown> };
}

function protocolError(error: DovetailError): McpError {
  const code = error.status >= 500 || error.status === 0 ? ErrorCode.InternalError : ErrorCode.InvalidParams;
  return new McpError(code, `${error.code}: ${error.message}`, error.toBody().error);
}

/** A server answering as the credential of `c` (set by auth()). Cheap: the tool list is built once per isolate. */
export function mcpServer(c: Context<GatewayEnv>, version: string): Server {
  const server = new Server(
    { name: "dovetail", title: "Dovetail agent message bus", version },
    { capabilities: { tools: {}, resources: {} }, instructions: INSTRUCTIONS, jsonSchemaValidator: NO_ELICITATION },
  );

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOL_LIST }));

  server.setRequestHandler(CallToolRequestSchema, async (request): Promise<CallToolResult> => {
    const tool = TOOLS_BY_NAME.get(request.params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `unknown tool ${JSON.stringify(request.params.name).slice(0, 80)}`);
    try {
      const result = await tool.call(c, request.params.arguments);
      return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result as Record<string, unknown> };
    } catch (error) {
      return toolError(asDovetailError(error));
    }
  });

  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: RESOURCES.map(({ name, title, uriTemplate, description, mimeType }) => ({ name, title, uriTemplate, description, mimeType })),
  }));

  server.setRequestHandler(ListResourcesRequestSchema, async () => {
    try {
      return { resources: (await Promise.all(RESOURCES.map((r) => r.list(c)))).flat() };
    } catch (error) {
      throw protocolError(asDovetailError(error));
    }
  });

  server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
    const { uri } = request.params;
    try {
      for (const template of RESOURCES) {
        const params = template.match(uri);
        if (params) return { contents: [{ uri, mimeType: template.mimeType, text: await template.read(c, params) }] };
      }
    } catch (error) {
      throw protocolError(asDovetailError(error));
    }
    throw new McpError(ErrorCode.InvalidParams, `not_found: no resource ${JSON.stringify(uri).slice(0, 120)}`, {
      code: "not_found",
      message: "no such resource",
    });
  });

  return server;
}
