/**
 * One MCP tool: its name, description, zod input schema, the scope it needs (the same as the
 * matching HTTP route's `permit()`) and its handler, which calls the same function the HTTP route
 * calls. A feature adds its tools as one module in `workers/mcp/tools/` and one line in
 * `workers/mcp/tools/index.ts` (docs/mcp.md, "Adding a tool").
 *
 * @example
 * export const peek = defineTool({
 *   name: "peek",
 *   title: "Peek at a topic",
 *   description: "The first ten messages of a topic. Needs the subscribe scope on the topic.",
 *   input: z.object({ topic: topicName }).strict(),
 *   scope: { action: "subscribe", topic: (input) => input.topic },
 *   hints: { readOnlyHint: true },
 *   run: async (c, _input, topic) => JSON.parse(await readMessagesJson(c, topic!, "earliest", 10)),
 * });
 */
import type { Context } from "hono";
import { z } from "zod";
import type { ScopeAction } from "../../protocol/scopes.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { checkedTopic, requirePermission } from "../middleware/permissions.ts";
import { invalid } from "../request-body.ts";

/** What a tool answers: a JSON object, sent as the result's `structuredContent` and as its text. */
export type ToolResult = object;

/** Hints for clients (MCP `ToolAnnotations`); none of them is enforced by the bus. */
export interface ToolHints {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface ToolDefinition<S extends z.ZodObject> {
  /** The tool's name: snake_case, unique on this server. */
  name: string;
  /** A short human-readable title. */
  title: string;
  /** What it does, what it answers and which errors to expect: read by the model that calls it. */
  description: string;
  /** The arguments (a strict object); listed to clients as JSON Schema, checked before `run`. */
  input: S;
  /**
   * The scope the call needs, as the matching HTTP route declares it: an action (any of a list)
   * on the topic `topic` returns (checked against the naming rules first); `undefined` means every
   * topic (`action:>`), as `permit(action, null)`. `"checked-by-object"`: the object `run` calls
   * checks the permission itself, as for its HTTP route (mail threads and search answer only what
   * the caller may read).
   */
  scope: { action: ScopeAction | readonly ScopeAction[]; topic: (input: z.infer<S>) => string | undefined } | "checked-by-object";
  hints?: ToolHints;
  /** Do the work; throw a `DovetailError` to refuse. `topic` is the checked topic of `scope`. */
  run(c: Context<GatewayEnv>, input: z.infer<S>, topic: string | undefined): Promise<ToolResult>;
}

/** A tool as the server holds it: its listing, and one call that checks, authorizes and runs. */
export interface McpTool {
  name: string;
  title: string;
  description: string;
  /** The input as JSON Schema (computed once, when the module loads). */
  inputSchema: { type: "object"; [key: string]: unknown };
  hints: ToolHints | undefined;
  call(c: Context<GatewayEnv>, args: unknown): Promise<ToolResult>;
}

/** Check a definition's shape once and make it a tool: arguments, then scope, then `run`. */
export function defineTool<S extends z.ZodObject>(def: ToolDefinition<S>): McpTool {
  return {
    name: def.name,
    title: def.title,
    description: def.description,
    // `io: "input"`: fields with defaults are optional to the caller.
    inputSchema: z.toJSONSchema(def.input, { io: "input", unrepresentable: "any" }) as McpTool["inputSchema"],
    hints: def.hints,
    async call(c, args) {
      const parsed = def.input.safeParse(args ?? {});
      if (!parsed.success) throw invalid(parsed.error);
      if (def.scope === "checked-by-object") return def.run(c, parsed.data, undefined);
      const named = def.scope.topic(parsed.data);
      const topic = named === undefined ? undefined : checkedTopic(named);
      requirePermission(c, def.scope.action, topic);
      return def.run(c, parsed.data, topic);
    },
  };
}

/** The `topic` argument most tools take. Its naming rules are checked with the scope (`invalid_topic`). */
export const topicName = z.string().describe("Topic name: segments of A-Z a-z 0-9 _ - ~ separated by . or /, e.g. jobs.email");
