/**
 * Registry: the agent registry of one tenant, one Durable Object per tenant (named by the tenant,
 * protocol/agents.ts `registryObjectName`). It holds the agents' records in SQLite, answers lookups
 * from memory (objects/agent-index.ts), holds the agents' presence sockets with the hibernation
 * API, and publishes lifecycle events to the tenant's system topic `_agents.events` through the
 * Topic object's `publish` RPC (docs/agents.md, decision 028).
 *
 * Presence: an agent registered on a presence socket is present while that socket is open (a
 * hibernated socket is open); one registered over HTTP while its heartbeat's TTL runs (an alarm
 * ends it). Presence is never taken from a stored flag alone: when the object starts, every record
 * stored as present is checked against the sockets the runtime still holds (`getWebSockets()`,
 * which survive hibernation and eviction but not a restart of the process) and the heartbeat
 * deadlines; an agent without either is marked absent with a `crashed` event. Agents whose SDK
 * reconnects register again and are present again.
 *
 * Events go through an outbox table written with the change they describe, in the same
 * synchronous step (so in the same implicit transaction), and are published in order, as an
 * idempotent producer: a batch whose publish was cut off is sent again with the same producer
 * sequence and the topic stores it once. An event is therefore published exactly once, after the
 * change it describes is stored.
 *
 * Only the gateway reaches a Registry: by RPC, and by presence upgrades it builds from scratch
 * (protocol/registry-request.ts).
 *
 * @example
 * const registry = env.REGISTRY.get(env.REGISTRY.idFromName(registryObjectName(tenant)));
 * unwrap(await registry.list({ capability: "summarize", present: true, limit: 100 }));
 */
import { DurableObject } from "cloudflare:workers";
import { RunAgain } from "./run-again.ts";
import {
  AGENT_EVENTS_TOPIC,
  DEFAULT_HEARTBEAT_TTL_MS,
  MAX_AGENTS,
  MAX_CAPABILITIES,
  MAX_META_BYTES,
  type AgentEvent,
  type AgentInfo,
  type AgentPage,
  type RegistryClientFrame,
} from "../protocol/agents.ts";
import { checkMeta, parseRegistryClientFrame } from "../protocol/agent-schemas.ts";
import { CLOSE_CODES } from "../protocol/close-codes.ts";
import { DovetailError } from "../protocol/errors.ts";
import { encodeErrorFrame, PING_TEXT, PONG_TEXT, PROTOCOL_VERSION } from "../protocol/frames.ts";
import type { SocketGrant } from "../protocol/grant.ts";
import { readRegistryUpgrade } from "../protocol/registry-request.ts";
import { topicObjectName } from "../protocol/topic-address.ts";
import { AgentIndex, type IndexQuery } from "./agent-index.ts";
import type { ObjectsEnv } from "./env.ts";
import { admitFrame, newFrameLimitState, type FrameLimitState } from "./frame-limiter.ts";
import { asDovetailError, rpcResult, unwrap, type RpcResult } from "./rpc-result.ts";

const SCHEMA_VERSION = 1;
/** The registry's idempotent-producer id on the events topic (the topic is per tenant, so one id serves all). */
const PRODUCER_ID = "dovetail-registry";
/** Events per publish. A batch stays far under the topic's 1,000 messages and 8 MiB (an event is under 3 KiB). */
const OUTBOX_BATCH = 200;
/** A failed publish is tried again after this long (by alarm, so a restart does not lose it). */
const PUBLISH_RETRY_MS = 1_000;

/** What a presence socket carries across hibernation. `session` is also the socket's tag. */
interface Attachment {
  v: 1;
  grant: SocketGrant;
  /** The agent this socket holds, or null (not registered yet, left, or taken over). */
  agent: string | null;
  session: string;
}

interface Row extends Record<string, SqlStorageValue> {
  id: string;
  name: string;
  capabilities: string;
  meta: string;
  present: number;
  via: string;
  session: string | null;
  registered_at: number;
  updated_at: number;
  seen_at: number;
  expires_at: number | null;
  ttl_ms: number | null;
  cred_exp: number | null;
}

/** The fields an agent sets (register: all of them, defaults for the missing; update: those given). */
interface AgentFields {
  name?: string | undefined;
  capabilities?: string[] | undefined;
  meta?: Record<string, unknown> | undefined;
}

/** Who holds a registration: a presence socket (its session) or HTTP heartbeats (their TTL). */
type Holder = { via: "socket"; session: string; credExp: number | null } | { via: "http"; ttlMs: number };

function toInfo(r: Row): AgentInfo {
  const info: AgentInfo = {
    id: r.id,
    name: r.name,
    capabilities: JSON.parse(r.capabilities) as string[],
    meta: JSON.parse(r.meta) as Record<string, unknown>,
    present: r.present === 1,
    via: r.via === "http" ? "http" : "socket",
    registeredAt: r.registered_at,
    updatedAt: r.updated_at,
    seenAt: r.seen_at,
  };
  if (r.expires_at !== null) info.expiresAt = r.expires_at;
  return info;
}

function sameFields(a: AgentInfo, b: AgentInfo): boolean {
  return a.name === b.name && JSON.stringify(a.capabilities) === JSON.stringify(b.capabilities) && JSON.stringify(a.meta) === JSON.stringify(b.meta);
}

export class Registry extends DurableObject<ObjectsEnv> {
  readonly #sql: SqlStorage;
  readonly #index = new AgentIndex();
  /** Agent id → the session holding it (a presence socket's, or null for HTTP). */
  readonly #sessions = new Map<string, string | null>();
  /** Frame buckets of the presence sockets seen since the object started (best effort: a wake starts them full). */
  readonly #limits = new Map<WebSocket, FrameLimitState>();
  /** Publishes the outbox of lifecycle events, one run at a time. */
  readonly #publishing = new RunAgain(
    () => this.#publishOutbox(),
    (error) => this.#publishFailed(error),
  );
  #retryAt: number | null = null;

  constructor(ctx: DurableObjectState, env: ObjectsEnv) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ag_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ag_agents (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, capabilities TEXT NOT NULL, meta TEXT NOT NULL,
      present INTEGER NOT NULL, via TEXT NOT NULL, session TEXT, registered_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, seen_at INTEGER NOT NULL, expires_at INTEGER, ttl_ms INTEGER, cred_exp INTEGER) WITHOUT ROWID`);
    // The alarm's questions: the earliest heartbeat deadline, and the earliest expiry of a present
    // agent's socket credential (NULL for everyone else).
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS ag_agents_expiry ON ag_agents (expires_at)`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS ag_agents_cred_exp ON ag_agents (cred_exp)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ag_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, event TEXT NOT NULL)`);
    const version = this.#sql.exec<{ v: number }>(`SELECT v FROM ag_meta WHERE k = 'schema'`).toArray()[0]?.v;
    if (version === undefined) this.#sql.exec(`INSERT INTO ag_meta (k, v) VALUES ('schema', ?)`, SCHEMA_VERSION);
    else if (version !== SCHEMA_VERSION) throw new Error(`registry: schema version ${version} is not ${SCHEMA_VERSION}`);
    // Keep-alives are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
    this.#load(Date.now());
  }

  /** Records into memory; presence checked against the live sockets and the heartbeat deadlines. */
  #load(now: number): void {
    const live = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment | null;
      if (a?.agent) live.add(`${a.agent}\n${a.session}`);
    }
    for (const row of this.#sql.exec<Row>(`SELECT * FROM ag_agents`).toArray()) {
      const info = toInfo(row);
      this.#index.put(info);
      this.#sessions.set(info.id, row.session);
      if (!info.present) continue;
      if (info.via === "socket" && !live.has(`${info.id}\n${row.session}`))
        this.#crash(info, "its presence socket is gone (the bus restarted or the connection dropped)", now);
      else if (info.via === "http" && (info.expiresAt ?? 0) <= now) this.#crash(info, "its heartbeat ran out", now);
    }
    if (this.#sql.exec(`SELECT 1 FROM ag_outbox LIMIT 1`).toArray().length > 0) this.#flush();
    void this.#reschedule();
  }

  // -------------------------------------------------------------------------------------------
  // Presence sockets

  /** The gateway's presence upgrade (protocol/registry-request.ts). */
  override async fetch(request: Request): Promise<Response> {
    const grant = readRegistryUpgrade(request);
    if (!grant) return new Response("not an upgrade request of the gateway", { status: 400 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    const session = crypto.randomUUID();
    // Tagged with its session, so a takeover finds the older socket without reading every attachment.
    this.ctx.acceptWebSocket(server, [session]);
    const attachment: Attachment = { v: 1, grant, agent: null, session };
    server.serializeAttachment(attachment);
    server.send(
      JSON.stringify({
        type: "welcome",
        version: PROTOCOL_VERSION,
        registry: { maxAgents: MAX_AGENTS, maxCapabilities: MAX_CAPABILITIES, maxMetaBytes: MAX_META_BYTES },
      }),
    );
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    if (raw === PING_TEXT) {
      ws.send(PONG_TEXT);
      return;
    }
    const a = ws.deserializeAttachment() as Attachment | null;
    if (!a) return;
    const now = Date.now();
    if (a.grant.exp !== undefined && a.grant.exp <= now) {
      // The credential expired under the socket: as on topic sockets, an error frame and 4401.
      ws.send(encodeErrorFrame(new DovetailError("unauthorized", "the credential this socket was opened with has expired")));
      ws.close(CLOSE_CODES.credentialEnded, "credential expired");
      this.#socketGone(ws, a, "its credential expired");
      return;
    }
    const parsed = parseRegistryClientFrame(raw);
    const id = parsed.ok ? parsed.frame.id : parsed.id;
    if (a.grant.rate) {
      let state = this.#limits.get(ws);
      if (!state) this.#limits.set(ws, (state = newFrameLimitState(a.grant.rate, now)));
      const verdict = admitFrame(state, a.grant.rate, typeof raw === "string" ? raw.length : raw.byteLength, now);
      if (!verdict.ok) {
        ws.send(encodeErrorFrame(new DovetailError("rate_limited", "too many frames on this socket", { retryAfterMs: verdict.retryAfterMs }), id));
        if (verdict.close) ws.close(CLOSE_CODES.policyViolation, "kept sending while rate limited");
        return;
      }
    }
    if (!parsed.ok) {
      ws.send(encodeErrorFrame(parsed.error, parsed.id));
      return;
    }
    try {
      this.#onFrame(ws, a, parsed.frame, now);
    } catch (error) {
      ws.send(encodeErrorFrame(asDovetailError(error, "registry"), id));
    }
  }

  #onFrame(ws: WebSocket, a: Attachment, frame: RegistryClientFrame, now: number): void {
    if (!a.grant.pub) throw new DovetailError("forbidden", `this credential may not register agents (it needs publish on ${AGENT_EVENTS_TOPIC})`);
    switch (frame.type) {
      case "register": {
        if (a.agent !== null && a.agent !== frame.agent) {
          throw new DovetailError("conflict", `this socket holds agent ${a.agent}; a presence socket holds one agent (leave first, or open another socket)`);
        }
        const { agent, takeover } = this.#register(frame.agent, frame, { via: "socket", session: a.session, credExp: a.grant.exp ?? null }, now);
        ws.serializeAttachment({ ...a, agent: frame.agent } satisfies Attachment);
        ws.send(JSON.stringify({ type: "registered", id: frame.id, agent, ...(takeover ? { takeover: true } : {}) }));
        return;
      }
      case "update": {
        if (a.agent === null) throw new DovetailError("not_found", "this socket holds no agent: register first");
        ws.send(JSON.stringify({ type: "updated", id: frame.id, agent: this.#update(a.agent, frame, now) }));
        return;
      }
      case "leave": {
        if (a.agent === null) throw new DovetailError("not_found", "this socket holds no agent: register first");
        ws.serializeAttachment({ ...a, agent: null } satisfies Attachment);
        this.#leave(a.agent, "left", now);
        ws.send(JSON.stringify({ type: "left", id: frame.id }));
        return;
      }
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    const a = ws.deserializeAttachment() as Attachment | null;
    if (a) this.#socketGone(ws, a, `its presence socket closed (code ${code}${reason ? `: ${reason}` : ""})`);
    try {
      ws.close(code === 1005 || code === 1006 ? CLOSE_CODES.normal : code, reason);
    } catch {
      // Already closed by the runtime.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    const a = ws.deserializeAttachment() as Attachment | null;
    if (a) this.#socketGone(ws, a, "its presence socket failed");
  }

  /** A presence socket is gone: its agent, if it still holds one, crashed. */
  #socketGone(ws: WebSocket, a: Attachment, reason: string): void {
    this.#limits.delete(ws);
    if (a.agent === null) return;
    ws.serializeAttachment({ ...a, agent: null } satisfies Attachment);
    const info = this.#index.get(a.agent);
    if (info?.present && info.via === "socket" && this.#sessions.get(a.agent) === a.session) this.#crash(info, reason, Date.now());
  }

  // -------------------------------------------------------------------------------------------
  // RPC (called by the gateway)

  /**
   * Close every presence socket opened with credential `credentialId` (a revoked API key), as
   * topics do: an `unauthorized` error frame, close code 4401, and its agent is no longer present.
   * Returns how many were closed.
   */
  async closeCredential(credentialId: string): Promise<number> {
    let closed = 0;
    for (const ws of this.ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment | null;
      if (!a || a.grant.cred !== credentialId) continue;
      try {
        ws.send(encodeErrorFrame(new DovetailError("unauthorized", "the credential this socket was opened with was revoked")));
        ws.close(CLOSE_CODES.credentialEnded, "credential revoked");
      } catch {
        // already closing
      }
      this.#socketGone(ws, a, "its credential was revoked");
      closed++;
    }
    return closed;
  }

  /** `POST /v1/agents`: register (or re-register) an agent held by HTTP heartbeats. */
  async registerHttp(id: string, fields: AgentFields, ttlMs: number | undefined): Promise<RpcResult<AgentInfo & { takeover?: boolean }>> {
    return rpcResult(() => {
      const { agent, takeover } = this.#register(id, fields, { via: "http", ttlMs: ttlMs ?? DEFAULT_HEARTBEAT_TTL_MS }, Date.now());
      return takeover ? { ...agent, takeover } : agent;
    });
  }

  /** `POST /v1/agents/{id}/heartbeat`: an HTTP agent is present for another TTL (and present again if it had run out). */
  async heartbeat(id: string, ttlMs: number | undefined): Promise<RpcResult<AgentInfo>> {
    return rpcResult(() => {
      const info = this.#index.get(id);
      if (!info) throw new DovetailError("not_found", `no agent ${id} is registered`);
      if (info.via !== "http") {
        throw new DovetailError("agent_replaced", `agent ${id} is held by a presence socket, not HTTP heartbeats; register it over HTTP again to take it over`);
      }
      const row = this.#sql.exec<{ ttl_ms: number | null }>(`SELECT ttl_ms FROM ag_agents WHERE id = ?`, id).one();
      return this.#register(id, info, { via: "http", ttlMs: ttlMs ?? row.ttl_ms ?? DEFAULT_HEARTBEAT_TTL_MS }, Date.now()).agent;
    });
  }

  /** `DELETE /v1/agents/{id}`: the agent leaves; a presence socket holding it is told (`agent_replaced`, 4009). */
  async remove(id: string): Promise<RpcResult<{ id: string; left: true }>> {
    return rpcResult(() => {
      if (!this.#index.get(id)) throw new DovetailError("not_found", `no agent ${id} is registered`);
      this.#leave(id, "removed over HTTP", Date.now());
      return { id, left: true as const };
    });
  }

  async get(id: string): Promise<RpcResult<AgentInfo>> {
    return rpcResult(() => {
      const info = this.#index.get(id);
      if (!info) throw new DovetailError("not_found", `no agent ${id} is registered`);
      return info;
    });
  }

  /** A page of agents in id order (the gateway checked the query's syntax). */
  async list(query: IndexQuery): Promise<RpcResult<AgentPage>> {
    return rpcResult(() => this.lookup(query));
  }

  /** The lookup itself, synchronous: what `list` answers, and what the registry's timing test measures. */
  lookup(query: IndexQuery): AgentPage {
    if (query.capability !== undefined && !this.#index.knows(query.capability)) {
      const known = this.#index.someCapabilities(10);
      throw new DovetailError(
        "unknown_capability",
        `no registered agent declares the capability ${JSON.stringify(query.capability)}${known.length > 0 ? ` (some that are declared: ${known.join(", ")})` : " (no agent declares any)"}`,
      );
    }
    return this.#index.query(query);
  }

  // -------------------------------------------------------------------------------------------
  // Alarm: heartbeat deadlines, and publishing that failed.

  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const row of this.#sql.exec<{ id: string }>(`SELECT id FROM ag_agents WHERE expires_at <= ?`, now).toArray()) {
      const info = this.#index.get(row.id);
      if (info?.present) this.#crash(info, "its heartbeat ran out", now);
    }
    // A silent presence socket whose credential expired: closed as topic sockets are (4401), so an
    // expired token does not keep an agent present.
    for (const row of this.#sql.exec<{ id: string; session: string | null }>(`SELECT id, session FROM ag_agents WHERE cred_exp <= ?`, now).toArray()) {
      const info = this.#index.get(row.id);
      if (!info?.present || !row.session) continue;
      for (const ws of this.ctx.getWebSockets(row.session)) {
        try {
          ws.send(encodeErrorFrame(new DovetailError("unauthorized", "the credential this socket was opened with has expired")));
          ws.close(CLOSE_CODES.credentialEnded, "credential expired");
        } catch {
          // Already closing.
        }
        const a = ws.deserializeAttachment() as Attachment | null;
        if (a) ws.serializeAttachment({ ...a, agent: null } satisfies Attachment);
      }
      this.#crash(info, "the credential of its presence socket expired", now);
    }
    if (this.#retryAt !== null && this.#retryAt <= now) {
      this.#retryAt = null;
      this.#flush();
    }
    await this.#reschedule();
  }

  async #reschedule(): Promise<void> {
    const expiry = this.#sql.exec<{ t: number | null }>(`SELECT MIN(expires_at) AS t FROM ag_agents`).one().t;
    const credExp = this.#sql.exec<{ t: number | null }>(`SELECT MIN(cred_exp) AS t FROM ag_agents`).one().t;
    const next = Math.min(expiry ?? Number.POSITIVE_INFINITY, credExp ?? Number.POSITIVE_INFINITY, this.#retryAt ?? Number.POSITIVE_INFINITY);
    if (next === Number.POSITIVE_INFINITY) await this.ctx.storage.deleteAlarm();
    else if ((await this.ctx.storage.getAlarm()) !== next) await this.ctx.storage.setAlarm(next);
  }

  // -------------------------------------------------------------------------------------------
  // Changes: each writes the record and its event in one synchronous step.

  /**
   * Register `id` for `holder`: a new record, a returning agent, or a takeover (the newer
   * connection wins: a presence socket holding the id is told with `agent_replaced` and 4009).
   */
  #register(id: string, fields: AgentFields, holder: Holder, now: number): { agent: AgentInfo; takeover: boolean } {
    const metaJson = checkMeta(fields.meta);
    const old = this.#index.get(id);
    if (!old && this.#index.size >= MAX_AGENTS) {
      const room = this.#index.oldestAbsent();
      if (!room) throw new DovetailError("too_many_agents", `this tenant has ${MAX_AGENTS} agents registered and all of them are present`);
      this.#leave(room.id, `removed to make room for ${id} (the tenant holds at most ${MAX_AGENTS} agents)`, now);
    }
    const oldSession = this.#sessions.get(id) ?? null;
    const session = holder.via === "socket" ? holder.session : null;
    // Another connection holds the id: a presence socket of another session, or HTTP taken by a socket.
    const takeover = old?.present === true && (old.via === "socket" ? oldSession !== session : holder.via === "socket");
    if (takeover && old?.via === "socket" && oldSession) this.#tellReplaced(oldSession, id, "a newer connection registered it");
    const agent: AgentInfo = {
      id,
      name: fields.name ?? id,
      capabilities: fields.capabilities ?? [],
      meta: JSON.parse(metaJson) as Record<string, unknown>,
      present: true,
      via: holder.via,
      registeredAt: old?.registeredAt ?? now,
      updatedAt: now,
      seenAt: old?.present && !takeover ? old.seenAt : now,
    };
    if (old && sameFields(old, agent)) agent.updatedAt = old.updatedAt;
    if (holder.via === "http") agent.expiresAt = now + holder.ttlMs;
    const credExp = holder.via === "socket" ? holder.credExp : null;
    this.#save(agent, session, holder.via === "http" ? holder.ttlMs : null, credExp);
    if (!old?.present || takeover) this.#event({ kind: "registered", agent, at: now, ...(takeover ? { takeover: true } : {}) });
    else if (!sameFields(old, agent)) this.#event({ kind: "updated", agent, at: now });
    if (holder.via === "http" || old?.via === "http" || credExp !== null) void this.#reschedule();
    return { agent, takeover };
  }

  /** Change the fields given of a registered, present agent. */
  #update(id: string, fields: AgentFields, now: number): AgentInfo {
    const old = this.#index.get(id);
    if (!old) throw new DovetailError("not_found", `no agent ${id} is registered`);
    const metaJson = fields.meta === undefined ? null : checkMeta(fields.meta);
    const agent: AgentInfo = {
      ...old,
      name: fields.name ?? old.name,
      capabilities: fields.capabilities ?? old.capabilities,
      meta: metaJson === null ? old.meta : (JSON.parse(metaJson) as Record<string, unknown>),
    };
    if (sameFields(old, agent)) return old;
    agent.updatedAt = now;
    const credExp = this.#sql.exec<{ c: number | null }>(`SELECT cred_exp AS c FROM ag_agents WHERE id = ?`, id).one().c;
    this.#save(agent, this.#sessions.get(id) ?? null, null, credExp);
    this.#event({ kind: "updated", agent, at: now });
    return agent;
  }

  /** The agent leaves: its record goes, with a `left` event; a presence socket still holding it is told. */
  #leave(id: string, reason: string, now: number): void {
    const old = this.#index.get(id);
    if (!old) return;
    const session = this.#sessions.get(id) ?? null;
    if (old.present && old.via === "socket" && session && reason !== "left") this.#tellReplaced(session, id, reason);
    this.#sql.exec(`DELETE FROM ag_agents WHERE id = ?`, id);
    this.#index.remove(id);
    this.#sessions.delete(id);
    this.#event({ kind: "left", agent: { ...old, present: false, seenAt: now }, at: now, reason });
  }

  /** Presence ended without a leave: the record stays, absent. */
  #crash(info: AgentInfo, reason: string, now: number): void {
    const agent: AgentInfo = { ...info, present: false, seenAt: now };
    delete agent.expiresAt;
    this.#save(agent, this.#sessions.get(info.id) ?? null, null, null);
    this.#event({ kind: "crashed", agent, at: now, reason });
  }

  /** The presence socket of `session` no longer holds `id`: an error frame, then 4009 (protocol/close-codes.ts). */
  #tellReplaced(session: string, id: string, why: string): void {
    for (const ws of this.ctx.getWebSockets(session)) {
      const a = ws.deserializeAttachment() as Attachment | null;
      if (a) ws.serializeAttachment({ ...a, agent: null } satisfies Attachment);
      try {
        ws.send(encodeErrorFrame(new DovetailError("agent_replaced", `this connection no longer holds agent ${id}: ${why}`)));
        ws.close(CLOSE_CODES.agentReplaced, "agent taken over");
      } catch {
        // Already closing.
      }
    }
  }

  /** Store the record (`ttlMs` null keeps the stored TTL; `credExp`: the holding socket's credential expiry). */
  #save(agent: AgentInfo, session: string | null, ttlMs: number | null, credExp: number | null): void {
    this.#sql.exec(
      `INSERT OR REPLACE INTO ag_agents (id, name, capabilities, meta, present, via, session, registered_at, updated_at, seen_at, expires_at, ttl_ms, cred_exp)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, (SELECT ttl_ms FROM ag_agents WHERE id = ?)), ?)`,
      agent.id,
      agent.name,
      JSON.stringify(agent.capabilities),
      JSON.stringify(agent.meta),
      agent.present ? 1 : 0,
      agent.via,
      session,
      agent.registeredAt,
      agent.updatedAt,
      agent.seenAt,
      agent.expiresAt ?? null,
      ttlMs,
      agent.id,
      credExp,
    );
    this.#index.put(agent);
    this.#sessions.set(agent.id, session);
  }

  // -------------------------------------------------------------------------------------------
  // Events: outbox → the tenant's `_agents.events` topic, in order, exactly once.

  #event(event: AgentEvent): void {
    this.#sql.exec(`INSERT INTO ag_outbox (agent, event) VALUES (?, ?)`, event.agent.id, JSON.stringify(event));
    this.#flush();
  }

  /** Publish the outbox in the background: one flush at a time, going round again for events queued meanwhile. */
  #flush(): void {
    this.#publishing.run();
  }

  /** A failed publish of the outbox: retried later. */
  async #publishFailed(error: unknown): Promise<void> {
    console.error("registry: publishing lifecycle events failed; retrying", error);
    this.#retryAt = Date.now() + PUBLISH_RETRY_MS;
    await this.#reschedule();
  }

  async #publishOutbox(): Promise<void> {
    // Wait for the change that queued the event to be durable: an event never tells of a change that could be lost.
    await this.ctx.storage.sync();
    const tenant = this.ctx.id.name;
    if (!tenant) throw new Error("registry object without a tenant name");
    const topic = this.env.TOPIC.get(this.env.TOPIC.idFromName(topicObjectName(tenant, AGENT_EVENTS_TOPIC)));
    for (;;) {
      const meta = new Map(
        this.#sql
          .exec<{ k: string; v: number }>(`SELECT k, v FROM ag_meta`)
          .toArray()
          .map((r) => [r.k, r.v]),
      );
      const seq = meta.get("pub_seq") ?? 0;
      // A batch that was sent and not confirmed is sent again exactly as it was (same rows, same seq).
      let upto = meta.get("pub_upto");
      const rows =
        upto === undefined
          ? this.#sql
              .exec<{ seq: number; agent: string; event: string }>(`SELECT seq, agent, event FROM ag_outbox ORDER BY seq LIMIT ?`, OUTBOX_BATCH)
              .toArray()
          : this.#sql
              .exec<{ seq: number; agent: string; event: string }>(`SELECT seq, agent, event FROM ag_outbox WHERE seq <= ? ORDER BY seq`, upto)
              .toArray();
      if (rows.length === 0) {
        this.#sql.exec(`DELETE FROM ag_meta WHERE k = 'pub_upto'`);
        return;
      }
      if (upto === undefined) {
        upto = rows[rows.length - 1]!.seq;
        this.#sql.exec(`INSERT OR REPLACE INTO ag_meta (k, v) VALUES ('pub_upto', ?)`, upto);
        await this.ctx.storage.sync();
      }
      const messages = rows.map((r) => ({ key: r.agent, data: JSON.parse(r.event) as unknown }));
      unwrap(await topic.publish(AGENT_EVENTS_TOPIC, messages, { id: PRODUCER_ID, seq }));
      this.#sql.exec(`DELETE FROM ag_outbox WHERE seq <= ?`, upto);
      this.#sql.exec(`DELETE FROM ag_meta WHERE k = 'pub_upto'`);
      this.#sql.exec(`INSERT OR REPLACE INTO ag_meta (k, v) VALUES ('pub_seq', ?)`, seq + 1);
    }
  }
}
