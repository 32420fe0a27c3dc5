/**
 * Agent registry tools: `register_agent` (as `POST /v1/agents`) and `list_agents` (as
 * `GET /v1/agents`), calling the routes' own functions (workers/routes/agents.ts). Their scope is
 * on the registry's events topic, as the routes' (docs/security.md).
 */
import { z } from "zod";
import { AGENT_EVENTS_TOPIC, MAX_AGENT_LIST_LIMIT } from "../../../protocol/agents.ts";
import { registerBodySchema } from "../../../protocol/agent-schemas.ts";
import { listAgents, listQuery, registerAgent } from "../../routes/agents.ts";
import { defineTool } from "../tool.ts";

export const registerAgentTool = defineTool({
  name: "register_agent",
  title: "Register an agent",
  description:
    "Register (or update) an agent in the tenant's registry, so others can find it by id, capability or metadata. " +
    "It stays present for `ttlMs` (default 30 s, at most 10 min); call again before then to stay present (a heartbeat). " +
    `Answers the agent's record. Needs the publish scope on ${AGENT_EVENTS_TOPIC}.`,
  input: registerBodySchema.strict(),
  scope: { action: "publish", topic: () => AGENT_EVENTS_TOPIC },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  run: (c, input) => registerAgent(c, input),
});

export const listAgentsTool = defineTool({
  name: "list_agents",
  title: "List agents",
  description:
    "Look agents up in the tenant's registry, a page at a time in id order: by `capability`, by metadata fields (`meta`, exact string matches), " +
    "present only (default), absent only or `any`. Answers {agents, cursor}; pass `cursor` back for the next page. " +
    `An unknown capability is refused with unknown_capability. Needs the subscribe scope on ${AGENT_EVENTS_TOPIC}.`,
  input: z
    .object({
      capability: z.string().optional().describe("Only agents that declare this capability"),
      meta: z.record(z.string(), z.string()).optional().describe("Only agents whose metadata field equals this string, for each field given"),
      present: z
        .union([z.boolean(), z.literal("any")])
        .optional()
        .describe("true (default): present agents; false: absent ones; any: both"),
      cursor: z.string().optional().describe("The cursor of the previous page"),
      limit: z.number().int().min(1).max(MAX_AGENT_LIST_LIMIT).optional().describe("Most agents per page"),
    })
    .strict(),
  scope: { action: "subscribe", topic: () => AGENT_EVENTS_TOPIC },
  hints: { readOnlyHint: true, openWorldHint: false },
  run(c, { meta, ...rest }) {
    // The same parameters as the HTTP lookup, checked by the same parser.
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(rest)) if (value !== undefined) params.set(name, String(value));
    for (const [field, value] of Object.entries(meta ?? {})) params.set(`meta.${field}`, value);
    return listAgents(c, listQuery(params));
  },
});

export const agentTools = [registerAgentTool, listAgentsTool];
