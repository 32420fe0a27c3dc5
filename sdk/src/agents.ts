/**
 * The agent registry client (docs/agents.md): `bus.agents`. Loaded with a dynamic import the first
 * time `bus.agents` is used (agents-handle.ts), and handed the SDK pieces it runs with, so it
 * imports no runtime code that the connect/publish/subscribe bundle also carries (decision 025:
 * that bundle is measured without this chunk).
 *
 * - `register()` opens a presence socket (`GET /v1/agents/ws`) and registers the agent on it; the
 *   agent is present while the socket is open. The socket reconnects by itself (backoff and give-up
 *   policy of the bus) and registers the agent again each time, with its latest fields. A newer
 *   connection registering the same id takes the agent over: this one is told (`agent_replaced`,
 *   close 4009) and ends without reconnecting, so two processes never take an id back and forth.
 * - `list()` / `get()` are HTTP lookups; `watch()` subscribes to the `_agents.events` topic.
 */
import {
  AGENT_EVENTS_TOPIC,
  agentIdProblem,
  agentQueryString,
  parseRegistryServerFrame,
  type AgentEvent,
  type AgentInfo,
  type AgentPage,
  type AgentQuery,
  type AgentSpec,
  type RegistryServerFrame,
} from "../../protocol/agents.ts";
import type { ReconnectBudget, ReconnectOptions } from "./backoff.ts";
import type { closeCodeError } from "../../protocol/close-codes.ts";
import type { DovetailError } from "../../protocol/errors.ts";
import type { Subscription, SubscribeOptions } from "./subscription.ts";
import type { Credentials } from "./token.ts";
import type { SocketLike, Transport } from "./transport.ts";
import type { WaitOptions, waitFor } from "./wait.ts";

export type { AgentEvent, AgentInfo, AgentPage, AgentQuery, AgentSpec };

/** What the bus gives the registry client (client.ts). */
export interface AgentsContext {
  /** Throws `closed` once the bus is closed. */
  check(): void;
  /** The bus's HTTP call (base URL, credentials, default timeout). */
  request(method: string, path: string, body?: unknown, options?: WaitOptions): Promise<unknown>;
  subscribe(topic: string, options: SubscribeOptions): Subscription;
  /** Where and how presence sockets connect. */
  presence(): PresenceConfig;
  /** Keep `presence` among what `bus.close()` ends; returns the way out. */
  track(presence: { close(): void }): () => void;
}

export interface PresenceConfig {
  url: string;
  credentials: Credentials;
  transport: Transport;
  reconnect: ReconnectOptions;
  pingIntervalMs: number;
  connectTimeoutMs: number;
  /** The bus's default `timeoutMs`. */
  timeoutMs: number;
}

/** The runtime pieces the chunk is handed instead of importing them (agents-handle.ts). */
export interface AgentsDeps {
  DovetailError: typeof DovetailError;
  ReconnectBudget: typeof ReconnectBudget;
  closeCodeError: typeof closeCodeError;
  waitFor: typeof waitFor;
  pingText: string;
}

export interface WatchOptions {
  /** Where to start on the events topic: `"latest"` (default: events from now on), `"earliest"`, an offset or a time. */
  from?: SubscribeOptions["from"];
  /** Ends the watch (the iterator rejects with `aborted`). */
  signal?: AbortSignal;
}

/** The fields `update()` may change. */
export type AgentFields = Omit<AgentSpec, "id">;

/** Errors after which a presence socket does not reconnect: the bus refused who or what, or another connection holds the agent. */
const FINAL = new Set([
  "agent_replaced",
  "forbidden",
  "invalid_field",
  "meta_too_large",
  "too_many_agents",
  "conflict",
  "unsupported_version",
  "bad_frame",
  "not_found",
]);

/**
 * An agent registered by this process: present while its presence socket is open. `update()`
 * changes its fields, `leave()` ends the registration (a `left` event), and `ended` tells why it
 * stopped: null after `leave()` or `bus.close()`, the error otherwise (`agent_replaced` when a newer
 * connection took the id, `closed` when the reconnect policy gave up).
 *
 * @example
 * const me = await bus.agents.register({ id: "summarizer-1", capabilities: ["summarize"], meta: { region: "eu" } });
 * await me.update({ meta: { region: "eu", load: 0.7 } });
 * await me.leave();
 */
export class AgentPresence {
  readonly id: string;
  /** The agent as the registry last answered it. */
  agent: AgentInfo | null = null;
  /** Resolves when this presence ends: null for leave() / bus.close(), else the error that ended it. Never rejects. */
  readonly ended: Promise<DovetailError | null>;
  /** @internal resolves with the first registration */
  readonly registered: Promise<AgentInfo>;
  readonly #fields: AgentFields;
  readonly #config: PresenceConfig;
  readonly #deps: AgentsDeps;
  readonly #budget: ReconnectBudget;
  readonly #untrack: () => void;
  readonly #request: AgentsContext["request"];
  #socket: SocketLike | null = null;
  #ready = false;
  #done = false;
  #nextId = 1;
  #registerId = 0;
  #lastFrameAt = 0;
  #refusal: DovetailError | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #ping: ReturnType<typeof setInterval> | null = null;
  /** Calls answered by id (update, leave). */
  readonly #pending = new Map<number, { resolve: (frame: RegistryServerFrame) => void; reject: (error: DovetailError) => void; update: boolean }>();
  /** Updates made while disconnected: the next registration carries them and answers them. */
  #afterRegister: { resolve: (agent: AgentInfo) => void; reject: (error: DovetailError) => void }[] = [];
  #settleRegistered!: { resolve: (agent: AgentInfo) => void; reject: (error: DovetailError) => void };
  #settleEnded!: (error: DovetailError | null) => void;

  /** @internal use `bus.agents.register()` */
  constructor(spec: AgentSpec, ctx: AgentsContext, deps: AgentsDeps) {
    const { id, ...fields } = spec;
    this.id = id;
    this.#fields = fields;
    this.#config = ctx.presence();
    this.#deps = deps;
    this.#budget = new deps.ReconnectBudget(this.#config.reconnect);
    this.registered = new Promise((resolve, reject) => (this.#settleRegistered = { resolve, reject }));
    this.registered.catch(() => undefined); // the caller of register() sees it
    this.ended = new Promise((resolve) => (this.#settleEnded = resolve));
    this.#untrack = ctx.track(this);
    this.#request = (...args) => ctx.request(...args);
    void this.#connect();
  }

  /**
   * Change the fields given (the others stay); resolves with the agent as the registry stored it.
   * While the socket is reconnecting, the change goes with the next registration.
   */
  update(fields: AgentFields, options?: WaitOptions): Promise<AgentInfo> {
    this.#checkLive();
    Object.assign(this.#fields, fields);
    return this.#deps.waitFor(`update agent ${this.id}`, this.#wait(options), async () => {
      if (!this.#ready) return new Promise<AgentInfo>((resolve, reject) => this.#afterRegister.push({ resolve, reject }));
      const frame = await this.#call({ type: "update", ...fields });
      return (frame as { agent: AgentInfo }).agent;
    });
  }

  /** End the registration: the registry removes the agent and publishes `left`; the socket closes. */
  async leave(options?: WaitOptions): Promise<void> {
    if (this.#done) return;
    if (this.#ready) {
      await this.#deps.waitFor(`leave as agent ${this.id}`, this.#wait(options), () => this.#call({ type: "leave" }));
      this.#end(null);
      return;
    }
    // Not connected: the registry already saw the socket go; the record is removed over HTTP.
    this.#end(null);
    await this.#request("DELETE", `/v1/agents/${encodeURIComponent(this.id)}`, undefined, this.#wait(options)).catch((error: DovetailError) => {
      if (error.code !== "not_found") throw error;
    });
  }

  /** Leave without waiting (what `bus.close()` does): a `leave` frame if connected, then the socket closes. */
  close(): void {
    if (this.#done) return;
    if (this.#ready) this.#send({ type: "leave", id: this.#nextId++ });
    this.#end(null);
  }

  #checkLive(): void {
    if (this.#done) throw new this.#deps.DovetailError("closed", `agent ${this.id} is no longer registered by this connection`);
  }

  #wait(options: WaitOptions | undefined): WaitOptions {
    return { signal: options?.signal, timeoutMs: options?.timeoutMs ?? this.#config.timeoutMs };
  }

  #send(frame: Record<string, unknown>): boolean {
    try {
      this.#socket?.send(JSON.stringify(frame));
      return this.#socket !== null;
    } catch {
      return false;
    }
  }

  #call(frame: Record<string, unknown>): Promise<RegistryServerFrame> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, update: frame.type === "update" });
      if (!this.#send({ ...frame, id })) {
        this.#pending.delete(id);
        reject(new this.#deps.DovetailError("closed", "the presence socket is not connected"));
      }
    });
  }

  async #connect(): Promise<void> {
    const { DovetailError } = this.#deps;
    this.#budget.down(Date.now());
    this.#refusal = null;
    const attempt = new AbortController();
    this.#timer = setTimeout(
      () => attempt.abort(new DovetailError("timeout", `no registration within ${this.#config.connectTimeoutMs} ms`)),
      this.#config.connectTimeoutMs,
    );
    let socket: SocketLike;
    try {
      const token = await this.#config.credentials.get();
      socket = await this.#config.transport({ url: this.#config.url, token, signal: attempt.signal });
    } catch (error) {
      this.#lost(error instanceof DovetailError ? error : new DovetailError("closed", String(error), {}, { cause: error }));
      return;
    }
    if (this.#done || attempt.signal.aborted) {
      closeQuietly(socket);
      if (!this.#done) this.#lost(attempt.signal.reason as DovetailError);
      return;
    }
    attempt.signal.addEventListener("abort", () => this.#drop(socket, attempt.signal.reason as DovetailError), { once: true });
    this.#socket = socket;
    this.#lastFrameAt = Date.now();
    socket.addEventListener("message", (event) => {
      if (this.#socket === socket) this.#onFrame(socket, event.data);
    });
    socket.addEventListener("close", (event) => {
      if (this.#socket !== socket) return;
      const final = this.#deps.closeCodeError(event.code);
      this.#drop(
        socket,
        this.#refusal ??
          (final
            ? new DovetailError(final, event.reason || `closed with ${event.code}`)
            : new DovetailError("closed", `presence socket closed (${event.code})`)),
      );
    });
    socket.addEventListener("error", () => {
      if (this.#socket === socket) this.#drop(socket, new DovetailError("closed", "presence socket error"));
    });
    const interval = this.#config.pingIntervalMs;
    if (interval > 0) {
      this.#ping = setInterval(() => {
        const idle = Date.now() - this.#lastFrameAt;
        if (idle >= 2 * interval) this.#drop(socket, new DovetailError("timeout", `no frame from the registry for ${idle} ms`));
        else if (idle >= interval) {
          try {
            socket.send(this.#deps.pingText);
          } catch {
            // the close event follows
          }
        }
      }, interval);
      (this.#ping as { unref?: () => void }).unref?.();
    }
  }

  #onFrame(socket: SocketLike, data: unknown): void {
    const { DovetailError } = this.#deps;
    this.#lastFrameAt = Date.now();
    const frame = parseRegistryServerFrame(data);
    if (!frame) return; // a frame type from a newer server: ignored
    switch (frame.type) {
      case "welcome": {
        this.#registerId = this.#nextId++;
        this.#send({ type: "register", id: this.#registerId, agent: this.id, ...this.#fields });
        return;
      }
      case "registered": {
        if (frame.id !== this.#registerId) return;
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = null;
        this.#ready = true;
        this.#budget.connected();
        this.agent = frame.agent;
        this.#settleRegistered.resolve(frame.agent);
        for (const waiter of this.#afterRegister.splice(0)) waiter.resolve(frame.agent);
        return;
      }
      case "error": {
        const error = DovetailError.fromWire(frame);
        if (frame.id === undefined) {
          this.#refusal = error; // the close that follows ends or retries the socket
          return;
        }
        if (frame.id === this.#registerId) {
          // The registration itself was refused (bad fields, full tenant): no retry can help.
          this.#refusal = error;
          this.#drop(socket, error);
          return;
        }
        this.#pending.get(frame.id)?.reject(error);
        this.#pending.delete(frame.id);
        return;
      }
      case "pong":
        return;
      default: {
        if (frame.type === "updated") this.agent = frame.agent;
        this.#pending.get(frame.id)?.resolve(frame);
        this.#pending.delete(frame.id);
      }
    }
  }

  /** The socket is gone: end for good on a final error, else reconnect within the budget. */
  #drop(socket: SocketLike, error: DovetailError): void {
    if (this.#socket !== socket) return;
    this.#socket = null;
    this.#ready = false;
    this.#stopTimers();
    closeQuietly(socket);
    this.#lost(error);
  }

  #lost(error: DovetailError): void {
    if (this.#done) return;
    this.#stopTimers();
    // An update whose answer was lost with the socket goes with the next registration (the fields
    // are already in #fields); anything else asked on the socket fails with it.
    for (const [id, p] of this.#pending) {
      if (p.update) this.#afterRegister.push({ resolve: (agent) => p.resolve({ type: "updated", id, agent }), reject: p.reject });
      else p.reject(error);
    }
    this.#pending.clear();
    const final = FINAL.has(error.code) || (error.code === "unauthorized" && !this.#config.credentials.refreshable);
    const delayMs = final ? null : this.#budget.failed(Date.now());
    if (delayMs === null) {
      this.#end(final ? error : new this.#deps.DovetailError("closed", `gave up registering agent ${this.id}: ${error.message}`, {}, { cause: error }));
      return;
    }
    setTimeout(() => {
      if (!this.#done) void this.#connect();
    }, delayMs);
  }

  #stopTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#ping) clearInterval(this.#ping);
    this.#timer = null;
    this.#ping = null;
  }

  #end(error: DovetailError | null): void {
    if (this.#done) return;
    this.#done = true;
    this.#ready = false;
    this.#stopTimers();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) closeQuietly(socket);
    const why = error ?? new this.#deps.DovetailError("closed", `agent ${this.id} left`);
    for (const p of [...this.#pending.values(), ...this.#afterRegister.splice(0)]) p.reject(why);
    this.#pending.clear();
    this.#settleRegistered.reject(why);
    this.#untrack();
    this.#settleEnded(error);
  }
}

function closeQuietly(socket: SocketLike): void {
  try {
    socket.close(1000, "client closed");
  } catch {
    // already closed
  }
}

/** `bus.agents`, once loaded (agents-handle.ts forwards to it). */
export class AgentsClient {
  readonly #ctx: AgentsContext;
  readonly #deps: AgentsDeps;

  constructor(ctx: AgentsContext, deps: AgentsDeps) {
    this.#ctx = ctx;
    this.#deps = deps;
  }

  async register(spec: AgentSpec, options?: WaitOptions): Promise<AgentPresence> {
    this.#ctx.check();
    const problem = agentIdProblem(spec?.id);
    if (problem) throw new this.#deps.DovetailError("invalid_field", `id: ${problem}`);
    const presence = new AgentPresence(spec, this.#ctx, this.#deps);
    const wait = { signal: options?.signal, timeoutMs: options?.timeoutMs ?? this.#ctx.presence().timeoutMs };
    try {
      await this.#deps.waitFor(`register agent ${spec.id}`, wait, () => presence.registered);
    } catch (error) {
      presence.close();
      throw error;
    }
    return presence;
  }

  async list(query: AgentQuery = {}, options?: WaitOptions): Promise<AgentPage> {
    const q = agentQueryString(query);
    return (await this.#ctx.request("GET", `/v1/agents${q ? `?${q}` : ""}`, undefined, options)) as AgentPage;
  }

  async get(id: string, options?: WaitOptions): Promise<AgentInfo> {
    const problem = agentIdProblem(id);
    if (problem) throw new this.#deps.DovetailError("invalid_field", `id: ${problem}`);
    return (await this.#ctx.request("GET", `/v1/agents/${encodeURIComponent(id)}`, undefined, options)) as AgentInfo;
  }

  async *watch(options: WatchOptions = {}): AsyncGenerator<AgentEvent, void, undefined> {
    const sub = this.#ctx.subscribe(AGENT_EVENTS_TOPIC, { from: options.from ?? "latest", ...(options.signal ? { signal: options.signal } : {}) });
    try {
      for await (const m of sub) yield m.data as AgentEvent;
    } finally {
      sub.close();
    }
  }
}
