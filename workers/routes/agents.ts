/**
 * /v1/agents: the agent registry (docs/agents.md). The presence socket, HTTP registration with
 * heartbeats, leave, lookup and list; every input is checked here before the tenant's Registry
 * object (objects/registry.ts) is reached. Permissions are scopes on the system topic the
 * registry publishes its events to (docs/security.md): `publish` on `_agents.events` registers,
 * `subscribe` on it reads the registry, as it reads the events.
 */
import { Hono, type Context } from "hono";
import {
  AGENT_EVENTS_TOPIC,
  type AgentInfo,
  type AgentPage,
  agentIdProblem,
  capabilityProblem,
  DEFAULT_AGENT_LIST_LIMIT,
  MAX_AGENT_LIST_LIMIT,
  META_FIELD,
  registryObjectName,
} from "../../protocol/agents.ts";
import { checkMeta, heartbeatBodySchema, registerBodySchema } from "../../protocol/agent-schemas.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { PROTOCOL_VERSION } from "../../protocol/frames.ts";
import { socketGrantFor } from "../../protocol/grant.ts";
import { registryUpgradeRequest } from "../../protocol/registry-request.ts";
import type { IndexQuery } from "../../objects/agent-index.ts";
import { unwrap } from "../../objects/rpc-result.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { may, permit, type TopicOf } from "../middleware/permissions.ts";
import { invalid, jsonBody } from "../request-body.ts";

/** Largest registration body: metadata at its limit, escaped, with every capability at its longest. */
const MAX_BODY_BYTES = 16 * 1024;
/** Most `meta.<field>=` filters in one lookup, and the longest value compared. */
const MAX_META_FILTERS = 8;
const MAX_META_FILTER_LENGTH = 256;

/** Registry permissions are checked on the events topic's name (docs/security.md). */
const eventsTopic: TopicOf = () => AGENT_EVENTS_TOPIC;

function registry(c: Context<GatewayEnv>) {
  return c.env.REGISTRY.get(c.env.REGISTRY.idFromName(registryObjectName(c.get("tenant"))));
}

function agentParam(c: Context<GatewayEnv>): string {
  const id = c.req.param("id");
  const problem = agentIdProblem(id);
  if (problem) throw new DovetailError("invalid_field", `agent id: ${problem}`);
  return id as string;
}

/**
 * `GET /v1/agents` parameters: `capability`, `meta.<field>`, `present`, `cursor`, `limit`; any
 * other name is refused (`token` is the credential). The MCP `list_agents` tool passes its
 * arguments through here too, so both check a lookup the same way.
 */
export function listQuery(params: URLSearchParams): IndexQuery {
  const query: IndexQuery = { present: true, limit: DEFAULT_AGENT_LIST_LIMIT };
  const meta: Record<string, string> = {};
  for (const [name, value] of params) {
    if (name === "capability") {
      const problem = capabilityProblem(value);
      if (problem) throw new DovetailError("invalid_field", `capability: ${problem}`);
      query.capability = value;
    } else if (name.startsWith("meta.")) {
      const field = name.slice(5);
      if (!META_FIELD.test(field)) throw new DovetailError("invalid_field", `${name.slice(0, 80)}: a metadata field is 1–64 characters of A-Z a-z 0-9 _ -`);
      if (value.length > MAX_META_FILTER_LENGTH) throw new DovetailError("invalid_field", `${name}: at most ${MAX_META_FILTER_LENGTH} characters`);
      meta[field] = value;
    } else if (name === "present") {
      if (value !== "true" && value !== "false" && value !== "any") throw new DovetailError("invalid_field", "present: expected true, false or any");
      query.present = value === "any" ? "any" : value === "true";
    } else if (name === "cursor") {
      if (agentIdProblem(value)) throw new DovetailError("invalid_field", "cursor: not a cursor of this list");
      query.cursor = value;
    } else if (name === "limit") {
      const limit = Number(value);
      if (!/^\d+$/.test(value) || limit < 1 || limit > MAX_AGENT_LIST_LIMIT) {
        throw new DovetailError("invalid_field", `limit: expected an integer from 1 to ${MAX_AGENT_LIST_LIMIT}`);
      }
      query.limit = limit;
    } else if (name !== "token") {
      throw new DovetailError(
        "invalid_field",
        `unknown query parameter ${JSON.stringify(name.slice(0, 64))} (capability, meta.<field>, present, cursor, limit)`,
      );
    }
  }
  const fields = Object.keys(meta).length;
  if (fields > MAX_META_FILTERS) throw new DovetailError("invalid_field", `at most ${MAX_META_FILTERS} meta.<field> filters`);
  if (fields > 0) query.meta = meta;
  return query;
}

/**
 * Register (or re-register) an agent held by HTTP heartbeats from the body `raw` (checked here);
 * the caller checked `publish` on the events topic. Shared with the MCP `register_agent` tool.
 */
export async function registerAgent(c: Context<GatewayEnv>, raw: unknown): Promise<AgentInfo & { takeover?: boolean }> {
  const body = registerBodySchema.safeParse(raw);
  if (!body.success) throw invalid(body.error);
  const { id, ttlMs, ...fields } = body.data;
  checkMeta(fields.meta); // refused here already; the registry checks again
  return unwrap(await registry(c).registerHttp(id, fields, ttlMs));
}

/** A page of the registry's lookup; the caller checked `subscribe` on the events topic. Shared with the MCP `list_agents` tool. */
export async function listAgents(c: Context<GatewayEnv>, query: IndexQuery): Promise<AgentPage> {
  return unwrap(await registry(c).list(query));
}

export function agentRoutes(): Hono<GatewayEnv> {
  const agents = new Hono<GatewayEnv>();

  /**
   * The presence socket (hibernation API, held by the Registry). Without `Upgrade: websocket` the
   * request goes on to `GET /:id` (an agent may be called `ws`). Needs `publish` on the events
   * topic, checked here rather than by permit() because the fall-through must not be refused.
   */
  agents.get("/ws", async function presence(c, next) {
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") return next();
    if (!may(c, "publish", AGENT_EVENTS_TOPIC))
      throw new DovetailError("forbidden", `this credential may not register agents (it needs publish on ${AGENT_EVENTS_TOPIC})`);
    const version = c.req.query("v");
    if (version !== undefined && version !== String(PROTOCOL_VERSION)) {
      throw new DovetailError("unsupported_version", `this server speaks protocol version ${PROTOCOL_VERSION}; asked for ${JSON.stringify(version)}`);
    }
    const grant = socketGrantFor(c.get("credential"), { pub: true, sub: may(c, "subscribe", AGENT_EVENTS_TOPIC), con: false });
    // Built from scratch: nothing of the client's request reaches the object (decision 022).
    return registry(c).fetch(registryUpgradeRequest(grant));
  });

  /** Register (or re-register) an agent held by HTTP heartbeats: `{id, name?, capabilities?, meta?, ttlMs?}`. */
  agents.post("/", permit("publish", eventsTopic), async (c) => c.json(await registerAgent(c, await jsonBody(c, MAX_BODY_BYTES))));

  /** Keep an HTTP agent present for another TTL: an empty body, or `{ttlMs}`. */
  agents.post("/:id/heartbeat", permit("publish", eventsTopic), async (c) => {
    const id = agentParam(c);
    // No body at all is the common case: a heartbeat with the TTL the agent registered with.
    const empty = c.req.header("Content-Length") === "0" || c.req.raw.body === null;
    const body = heartbeatBodySchema.safeParse(empty ? {} : await jsonBody(c, 1024));
    if (!body.success) throw invalid(body.error);
    return c.json(unwrap(await registry(c).heartbeat(id, body.data.ttlMs)));
  });

  /** The agent leaves (a presence socket that holds it is told with `agent_replaced` and 4009). */
  agents.delete("/:id", permit("publish", eventsTopic), async (c) => {
    return c.json(unwrap(await registry(c).remove(agentParam(c))));
  });

  /** Lookup: `?capability=&meta.<field>=&present=true|false|any&cursor=&limit=`, a page in id order. */
  agents.get("/", permit("subscribe", eventsTopic), async (c) => c.json(await listAgents(c, listQuery(new URL(c.req.url).searchParams))));

  agents.get("/:id", permit("subscribe", eventsTopic), async (c) => {
    return c.json(unwrap(await registry(c).get(agentParam(c))));
  });

  const notAllowed = (c: Context<GatewayEnv>) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on ${new URL(c.req.url).pathname}`);
  };
  agents.all("/:id/heartbeat", notAllowed);
  agents.all("/:id", notAllowed);
  agents.all("/", notAllowed);
  return agents;
}
