/**
 * The agent registry on the wire (docs/agents.md): agent records, lifecycle events, the frames of
 * the registry's presence socket (`GET /v1/agents/ws`) and the limits. The Registry object
 * (objects/registry.ts), the gateway (workers/routes/agents.ts) and the SDK (sdk/src/agents.ts)
 * all import this module; it builds no schema, so clients never load zod (decision 025). The
 * server's checks of what clients send are in agent-schemas.ts.
 *
 * One presence socket holds at most one agent: the agent is present while its socket is open
 * (hibernation included), and leaving, a closed socket and a newer registration of the same id
 * are told apart. Compatibility rule as for every v1 frame: receivers ignore fields they do not
 * know; fields and frame types may be added within version 1.
 */

/**
 * The system topic the registry publishes its lifecycle events to, one per tenant. Only the
 * registry writes it (nothing else needs to); a client reads it as any topic, with `subscribe` on
 * this name. Its name starts with `_` so that it sorts apart from application topics; it follows
 * the topic-name rules (protocol/topic-name.ts).
 */
export const AGENT_EVENTS_TOPIC = "_agents.events";

/** Agent ids: 1–128 of `A-Z a-z 0-9 _ . : -` (a hostname, a UUID, `planner.eu-1`). */
export const AGENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Capability names: 1–64 of `A-Z a-z 0-9 _ . : / -` (`summarize`, `tools/search`, `llm:gpt`). */
export const CAPABILITY = /^[A-Za-z0-9_.:/-]{1,64}$/;
/** Metadata field names a lookup may filter on (`?meta.region=eu`). */
export const META_FIELD = /^[A-Za-z0-9_-]{1,64}$/;
export const MAX_AGENT_NAME_LENGTH = 128;
export const MAX_CAPABILITIES = 32;
/**
 * Largest metadata, as JSON text (UTF-16 units, at most the UTF-8 size for ASCII). The registry
 * keeps every record in memory for lookups (objects/registry.ts): 10,000 agents at this size are
 * about 20 MB of text, well within an object's 128 MB.
 */
export const MAX_META_BYTES = 2048;
/** Most agents one tenant may have registered (present or not); an absent one makes room first. */
export const MAX_AGENTS = 10_000;
/** HTTP registrations are present until their heartbeat's TTL runs out. */
export const DEFAULT_HEARTBEAT_TTL_MS = 30_000;
export const MIN_HEARTBEAT_TTL_MS = 1_000;
export const MAX_HEARTBEAT_TTL_MS = 10 * 60_000;
/** Page size of `GET /v1/agents`. */
export const DEFAULT_AGENT_LIST_LIMIT = 100;
export const MAX_AGENT_LIST_LIMIT = 1000;
/** Largest frame the presence socket reads (a register frame at every limit is under 8 KiB). */
export const MAX_REGISTRY_FRAME_BYTES = 16 * 1024;

/** Durable Object name of a tenant's Registry. */
export function registryObjectName(tenant: string): string {
  return tenant;
}

/** What an agent says about itself when it registers (and may change with an update). */
export interface AgentSpec {
  /** Stable id, unique in the tenant ({@link AGENT_ID}). */
  id: string;
  /** A name for people; defaults to the id. */
  name?: string;
  /** What it can do, looked up with `?capability=` ({@link CAPABILITY}, at most {@link MAX_CAPABILITIES}). */
  capabilities?: string[];
  /** Any JSON object, at most {@link MAX_META_BYTES} as JSON; top-level scalars can be looked up (`?meta.region=eu`). */
  meta?: Record<string, unknown>;
}

/** An agent as the registry answers it. */
export interface AgentInfo {
  id: string;
  name: string;
  capabilities: string[];
  meta: Record<string, unknown>;
  /** Connected now (its presence socket is open, or its HTTP heartbeat has not run out). */
  present: boolean;
  /** How it holds its presence: a presence socket, or HTTP heartbeats. */
  via: "socket" | "http";
  /** First registration of this id (ms since the epoch); kept across reconnects. */
  registeredAt: number;
  /** Last register or update. */
  updatedAt: number;
  /** When presence last changed (came or went). */
  seenAt: number;
  /** HTTP only: when the agent stops being present without a heartbeat. */
  expiresAt?: number;
}

/** A page of `GET /v1/agents`. */
export interface AgentPage {
  agents: AgentInfo[];
  /** Pass as `cursor` for the next page; null on the last one. */
  cursor: string | null;
}

/** Which agents a lookup wants. */
export interface AgentQuery {
  /** Agents that declare this capability. Unknown to every registered agent: `unknown_capability`. */
  capability?: string;
  /** Top-level metadata fields equal to these values (compared as text: `{ port: "80" }` matches 80). */
  meta?: Record<string, string>;
  /** `true` (default): present agents only; `false`: absent ones; `"any"`: both. */
  present?: boolean | "any";
  /** Ids after this one (the previous page's cursor). */
  cursor?: string;
  /** 1–1000, default 100. */
  limit?: number;
}

/**
 * A lifecycle event, the `data` of a message on {@link AGENT_EVENTS_TOPIC} (its `key` is the
 * agent id, so one agent's events are in order).
 * - `registered`: a new registration, an agent present again, or a newer connection taking the id
 *   over (`takeover: true`);
 * - `updated`: name, capabilities or metadata changed;
 * - `left`: the agent left (`leave()`, `DELETE /v1/agents/{id}`); its record is gone;
 * - `crashed`: its presence ended without a leave: the socket closed (`reason` says how) or the
 *   HTTP heartbeat ran out. The record stays, absent.
 */
export interface AgentEvent {
  kind: "registered" | "updated" | "left" | "crashed";
  agent: AgentInfo;
  /** When the registry saw it (ms since the epoch). */
  at: number;
  takeover?: boolean;
  reason?: string;
}

// ---------------------------------------------------------------------------------------------
// Presence socket frames

/**
 * Client → server. `register` (`id` correlates the answer) makes this socket the agent's presence;
 * a socket holds one agent, and registering another id on it is a `conflict`. `update` changes the
 * fields given. `leave` ends the registration; the socket may then register again or close.
 */
export type RegistryClientFrame =
  | ({ type: "register"; id: number; agent: string } & Omit<AgentSpec, "id">)
  | ({ type: "update"; id: number } & Omit<AgentSpec, "id">)
  | { type: "leave"; id: number };

/** Server → client: first frame on every presence socket, with the registry's limits. */
export interface RegistryWelcomeFrame {
  type: "welcome";
  version: number;
  registry: { maxAgents: number; maxCapabilities: number; maxMetaBytes: number };
}

/** Server → client: the answer to `register` (`takeover`: another connection held the id and was closed). */
export interface RegisteredFrame {
  type: "registered";
  id: number;
  agent: AgentInfo;
  takeover?: boolean;
}

/** Server → client: the answer to `update`. */
export interface UpdatedFrame {
  type: "updated";
  id: number;
  agent: AgentInfo;
}

/** Server → client: the answer to `leave`. */
export interface LeftFrame {
  type: "left";
  id: number;
}

/**
 * Server → client: as on topic sockets (protocol/frames.ts). Without `id` and with code
 * `agent_replaced` it tells the older connection that a newer one took its agent over; close code
 * 4009 (`CLOSE_CODES.agentReplaced`) follows.
 */
export interface RegistryErrorFrame {
  type: "error";
  id?: number;
  code: string;
  message: string;
  [detail: string]: unknown;
}

export type RegistryServerFrame = RegistryWelcomeFrame | RegisteredFrame | UpdatedFrame | LeftFrame | RegistryErrorFrame | { type: "pong" };

/**
 * Parse a presence socket's server frame (client side): the frame, or null when it is not one a
 * client can use (not JSON, unknown type, missing fields). Unknown types are null too: ignore them.
 */
export function parseRegistryServerFrame(raw: unknown): RegistryServerFrame | null {
  if (typeof raw !== "string") return null;
  let f: Record<string, unknown>;
  try {
    f = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof f !== "object" || f === null) return null;
  switch (f.type) {
    case "welcome":
      return typeof f.version === "number" ? (f as unknown as RegistryWelcomeFrame) : null;
    case "registered":
    case "updated":
      return typeof f.id === "number" && typeof f.agent === "object" && f.agent !== null ? (f as unknown as RegisteredFrame | UpdatedFrame) : null;
    case "left":
      return typeof f.id === "number" ? (f as unknown as LeftFrame) : null;
    case "error":
      return typeof f.code === "string" && typeof f.message === "string" ? (f as unknown as RegistryErrorFrame) : null;
    case "pong":
      return { type: "pong" };
    default:
      return null;
  }
}

/** Why `id` is not a valid agent id, or null. */
export function agentIdProblem(id: unknown): string | null {
  return typeof id === "string" && AGENT_ID.test(id) ? null : "an agent id is 1–128 characters of A-Z a-z 0-9 _ . : -";
}

/** Why `capability` is not a valid capability name, or null. */
export function capabilityProblem(capability: unknown): string | null {
  return typeof capability === "string" && CAPABILITY.test(capability) ? null : "a capability is 1–64 characters of A-Z a-z 0-9 _ . : / -";
}

/**
 * The query string of `GET /v1/agents` for `query` (SDK and CLI), without `?`.
 *
 * @example
 * agentQueryString({ capability: "summarize", meta: { region: "eu" } }) // "capability=summarize&meta.region=eu"
 */
export function agentQueryString(query: AgentQuery): string {
  const q = new URLSearchParams();
  if (query.capability !== undefined) q.set("capability", query.capability);
  for (const [k, v] of Object.entries(query.meta ?? {})) q.set(`meta.${k}`, v);
  if (query.present !== undefined) q.set("present", String(query.present));
  if (query.cursor !== undefined) q.set("cursor", query.cursor);
  if (query.limit !== undefined) q.set("limit", String(query.limit));
  return q.toString();
}
