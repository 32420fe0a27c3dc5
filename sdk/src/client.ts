/**
 * `connect()` and the Bus: the SDK's entry point. Lazy: no socket opens until a topic is used,
 * then one socket per topic for publishing and one per subscription.
 *
 * Every method that waits takes `{ signal, timeoutMs }` (wait.ts) and rejects with a
 * `DovetailError` (`timeout`, `aborted`) when either ends the wait; `connect(url, { timeoutMs })`
 * sets the default for all of them (30 s).
 *
 * Adding a method: a new kind of socket (for example a consumer) takes `this.#linkConfig(topic, …)`
 * and registers itself in a set that `close()` ends, as `subscribe()` does; a new HTTP call is
 * one `this.#http(...)` or `this.#request(...)` line.
 */
import { ReconnectBudget, type ReconnectOptions } from "./backoff.ts";
import { DovetailError } from "../../protocol/errors.ts";
import type { TopicEntry, TopicPage } from "../../protocol/topic-list.ts";
import { busBases, requestJson } from "./http.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS, Link, type LinkConfig } from "./link.ts";
import { decodeMessage, encodeMessage, setTraceHeaders, type Message, type PublishOptions } from "./message.ts";
import { PublishPipe } from "./pipe.ts";
import type { DeliveredMessage } from "../../protocol/frames.ts";
import type { Durability } from "../../protocol/durability.ts";
import { Publisher, type PublisherOptions } from "./publisher.ts";
import type { InferOutput, StandardSchema } from "./standard-schema.ts";
import { StatusHub, type StatusEvent } from "./status.ts";
import { Subscription, wireFrom, type SubscribeOptions } from "./subscription.ts";
import { Consumer } from "./consumer-handle.ts";
import { PatternSubscription } from "./pattern-handle.ts";
import { Agents } from "./agents-handle.ts";
import type { StreamSubscriptions } from "./ds-subscriptions.ts";
import type { MailApi, MailClient } from "./mail.ts";
import type { ConsumeOptions, JobHandler } from "./consumer.ts";
import type { RequestHandler, RequestOptions, Requests, ServeOptions, Server } from "./requests.ts";
import { groupNameProblem, type GroupInfo, type GroupSettingsInput } from "../../protocol/groups.ts";
import { credentials, type Credentials, type TokenSource } from "./token.ts";
import { topicNameProblem } from "../../protocol/topic-name.ts";
import { webSocketTransport, type FetchLike, type Transport } from "./transport.ts";
import { DEFAULT_TIMEOUT_MS, sleep, timeoutError, timeoutOf, waitFor, type WaitOptions } from "./wait.ts";

/** A topic pattern as a literal: a `*` segment, or a last `>` (a plain `string` is taken as a topic). */
export type TopicPattern = `${string}*${string}` | `${string}>`;

export interface ConnectOptions {
  /**
   * API key or JWT, sent as `Authorization: Bearer` over HTTP (WebSocket: see the transport). Or a
   * function returning one (sync or async), called before every connection and request, so that
   * short-lived tokens can be refreshed ({@link TokenSource}).
   */
  token?: TokenSource;
  /** How WebSockets are opened. Default: the global `WebSocket` ({@link webSocketTransport}). */
  transport?: Transport;
  /** `fetch` for the HTTP API (`info`, `read`). Default: the global `fetch`. */
  fetch?: FetchLike;
  /**
   * Reconnect backoff and give-up policy (backoff.ts). Default: 100 ms doubling to 5 s with
   * jitter, never giving up (`maxAttempts` and `maxElapsedMs` are `Infinity`); refusals of the
   * credential or the topic end a connection at once.
   */
  reconnect?: ReconnectOptions;
  /** Keep-alive ping after this much silence; a socket silent for twice as long is replaced. Default 15000; 0 disables. */
  pingIntervalMs?: number;
  /** Default `timeoutMs` of every call that waits (publish, send, flush, ready, info, read, topics, subscribing). Default 30000. */
  timeoutMs?: number;
  /** Longest one connection attempt may take, from opening the socket to the topic's welcome; then it is retried. Default 10000. */
  connectTimeoutMs?: number;
}

/** What `bus.info(topic)` returns (GET /v1/topics/{topic}). */
export interface TopicInfo {
  topic: string;
  /** Offset the next message will get. */
  head: number;
  /** First offset still stored. */
  earliest: number;
  messages: number;
  bytes: number;
  lastTime: number;
  subscribers: number;
  retention: { maxAgeMs: number; maxMessages: number; maxBytes: number };
  /** When subscribers see a message and what its ack promises (docs/durability.md). */
  durability: Durability;
}

/** What `bus.configure` changes; an absent field is left as it is. */
export interface TopicSettings {
  /** `"sync"` (the default), `"async"` or `"memory"` (only before the topic's first message). */
  durability?: Durability;
  /** Replaces the whole retention: a limit left out (or 0) means none. */
  retention?: Partial<TopicInfo["retention"]>;
}

export type { TopicEntry, TopicPage };

export interface TopicListOptions extends WaitOptions {
  /** Names starting with this. */
  prefix?: string;
  /** Names matching this pattern: `*` one segment, `>` one or more at the end. */
  pattern?: string;
  /** The `cursor` of the previous page. */
  cursor?: string;
  /** 1 to 1000; default 100. */
  limit?: number;
}

export interface ReadOptions extends WaitOptions {
  from?: number | "earliest" | "latest" | Date | { time: number };
  /** 1 to 1000; default 100. */
  limit?: number;
}

export interface ReadResult {
  messages: Message[];
  /** Offset to read from next. */
  next: number;
  head: number;
  earliest: number;
}

export const DEFAULT_PING_INTERVAL_MS = 15_000;

/**
 * A connection to a Dovetail bus. Make one with {@link connect}.
 *
 * @example
 * const bus = connect("http://127.0.0.1:8787", { token });
 * const { offset } = await bus.publish("agents.events", { hello: 1 });
 * await bus.close();
 */
export class Bus {
  readonly url: string;
  readonly #httpBase: string;
  readonly #wsBase: string;
  readonly #options: ConnectOptions;
  readonly #transport: Transport;
  readonly #credentials: Credentials;
  readonly #timeoutMs: number;
  readonly #status = new StatusHub();
  readonly #pipes = new Map<string, PublishPipe>();
  readonly #publishers = new Set<Publisher>();
  /** Subscriptions and consumers: each has its own socket, and `close()` ends them all. */
  readonly #subscriptions = new Set<{ close(): void }>();
  #agents: Agents | null = null;
  #mail: Promise<MailClient> | null = null;
  /** Requesters and responders (requests.ts), loaded on first use. */
  #requests: Promise<Requests> | null = null;
  #closed = false;
  /** The tracing chunk (trace.ts: `traceparent` on what is published), loading. */
  readonly #tracing = import("./trace.ts").then(
    (t) => t.tracer(setTraceHeaders),
    () => {},
  ); // without the chunk, messages go untraced

  /** @internal use {@link connect} */
  constructor(url: string, options: ConnectOptions = {}) {
    const { httpBase, wsBase } = busBases(url);
    this.url = url;
    this.#httpBase = httpBase;
    this.#wsBase = wsBase;
    this.#options = options;
    this.#transport = options.transport ?? webSocketTransport();
    this.#credentials = credentials(options.token);
    this.#timeoutMs = timeoutOf(options, DEFAULT_TIMEOUT_MS);
  }

  /**
   * Resolves once the bus answers and accepts the credential (one authenticated request,
   * `GET /v1/topics?limit=1`; a token function is called for it). Connection failures are retried
   * with the reconnect backoff until `timeoutMs` (default 30 s) or the give-up policy ends it;
   * a refusal rejects at once with the server's error (`unauthorized`, `forbidden`).
   *
   * @example
   * const bus = connect(process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
   * await bus.ready({ timeoutMs: 5000 }); // fails fast on a wrong URL or token
   */
  async ready(options?: WaitOptions): Promise<void> {
    this.#checkOpen();
    const budget = new ReconnectBudget(this.#options.reconnect);
    let last: DovetailError | null = null;
    await waitFor(
      `ready (${this.url})`,
      this.#wait(options),
      async (signal) => {
        budget.down(Date.now());
        for (;;) {
          try {
            await this.#request("GET", "/v1/topics?limit=1", undefined, { signal, timeoutMs: Infinity });
            return;
          } catch (error) {
            if (signal.aborted) throw error;
            const e = error instanceof DovetailError ? error : new DovetailError("closed", String(error), {}, { cause: error });
            if (!isTransient(e)) throw e;
            last = e;
            const delayMs = budget.failed(Date.now());
            if (delayMs === null)
              throw new DovetailError("closed", `gave up reaching ${this.url} after ${budget.attempts} failed attempts: ${e.message}`, {}, { cause: e });
            await sleep(e.details.retryAfterMs ?? delayMs, signal);
          }
        }
      },
      (error) => (error.code === "timeout" && last ? timeoutError(`ready (${this.url})`, timeoutOf(options, this.#timeoutMs), last) : error),
    );
  }

  /**
   * Publish one message and wait until the topic has stored it, at most `timeoutMs` (default
   * 30 s). A publish whose wait ends (timeout, signal) before the topic took the message is
   * withdrawn and never stored; the error's message says whether it had been sent.
   *
   * @example
   * const { offset } = await bus.publish("agents.events", { hello: 1 }, { key: "a1", headers: { kind: "greeting" } });
   */
  async publish<T = unknown>(topic: string, data: T, options?: PublishOptions): Promise<{ offset: number }> {
    const pipe = this.#pipeFor(topic);
    await this.#tracing;
    const message = encodeMessage(data, options);
    const max = pipe.limits?.maxMessageBytes;
    if (max !== undefined && message.size > max) {
      throw new DovetailError("message_too_large", `message is ${message.size} bytes; the topic accepts at most ${max}`);
    }
    let frame: ReturnType<PublishPipe["enqueue"]> | null = null;
    const r = await waitFor(
      `publish to ${topic}`,
      this.#wait(options),
      async () => {
        frame = pipe.enqueue(message.json, 1);
        return frame.result;
      },
      (error) => {
        const withdrawn = frame?.cancel(error) ?? true;
        const note = withdrawn ? "it was never sent" : "it was sent and may still be stored";
        return new DovetailError(error.code, `${error.message}; ${note}`, {}, { cause: error.cause });
      },
    );
    return { offset: r.offset };
  }

  /**
   * A batching publisher for `topic`: `send()` returns a promise of the offset, settled within
   * `timeoutMs` (default: the bus's, 30 s).
   *
   * @example
   * const pub = bus.publisher<{ n: number }>("agents.events", { lingerMs: 5, maxBatch: 500, maxInFlight: 8 });
   * pub.send({ n: 1 });
   * await pub.flush();
   */
  publisher<T = unknown>(topic: string, options?: PublisherOptions): Publisher<T> {
    this.#pipeFor(topic); // checks the name and that the bus is open
    const publisher = new Publisher<T>(topic, () => this.#pipeFor(topic), options, this.#timeoutMs);
    this.#publishers.add(publisher as Publisher);
    return publisher;
  }

  /**
   * Subscribe to `topic`: an async iterator of messages, exactly once and in order across
   * reconnects. Starts at `from` (default `"latest"`). With `schema` (any Standard Schema, such
   * as a zod schema), each message is validated as it is taken and typed by the schema's output;
   * see {@link SubscribeOptions.onInvalid} for messages that do not fit.
   *
   * A pattern (`agents.*.events`, `agents.>`: `*` one segment, `>` the rest) subscribes to every
   * topic it matches, those created later included, on one socket; each message names its
   * `topic`, and each topic resumes where it left off (docs/patterns.md).
   *
   * @example
   * for await (const msg of bus.subscribe("agents.events", { from: 0 })) console.log(msg.offset, msg.data);
   * for await (const msg of bus.subscribe("orders", { from: 0, schema: Order })) msg.data.id; // typed by the schema
   * for await (const msg of bus.subscribe("agents.*.events")) console.log(msg.topic, msg.offset, msg.data);
   */
  subscribe<S extends StandardSchema>(pattern: TopicPattern, options: SubscribeOptions<InferOutput<S>> & { schema: S }): PatternSubscription<InferOutput<S>>;
  subscribe<T = unknown>(pattern: TopicPattern, options?: SubscribeOptions<T>): PatternSubscription<T>;
  subscribe<S extends StandardSchema>(topic: string, options: SubscribeOptions<InferOutput<S>> & { schema: S }): Subscription<InferOutput<S>>;
  subscribe<T = unknown>(topic: string, options?: SubscribeOptions<T>): Subscription<T>;
  subscribe<T = unknown>(topic: string, options: SubscribeOptions<T> = {}): Subscription<T> | PatternSubscription<T> {
    this.#checkOpen();
    if (/[*>]/.test(topic)) {
      // A pattern (docs/patterns.md): the bus checks it. Its own socket, and its code loaded on first use.
      const config = { ...this.#linkConfig(topic, true), url: `${this.#wsBase}/v1/patterns/ws?pattern=${encodeURIComponent(topic)}` };
      const sub: PatternSubscription<T> = new PatternSubscription<T>(
        topic,
        config,
        options,
        () => this.#subscriptions.delete(sub),
        timeoutOf(options, this.#timeoutMs),
      );
      this.#subscriptions.add(sub);
      return sub;
    }
    this.#checkTopic(topic);
    const config = this.#linkConfig(topic, options.hibernate ?? true);
    const sub: Subscription<T> = new Subscription<T>(topic, config, options, () => this.#subscriptions.delete(sub as Subscription), this.#timeoutMs);
    this.#subscriptions.add(sub as Subscription);
    return sub;
  }

  /**
   * Join consumer group `group` of `topic` (created with `options.create` if it does not exist):
   * an async iterator of jobs, each handed to this member alone until it is settled
   * (docs/groups.md). With `handler`, jobs are run through it: acked when it returns, nacked when
   * it throws; `consumer.done` resolves when the consumer ends.
   *
   * @example
   * for await (const job of bus.consume("jobs", "workers", { create: { start: "earliest" } })) {
   *   await work(job.data);
   *   await job.ack();
   * }
   */
  consume<T = unknown>(topic: string, group: string, options?: ConsumeOptions, handler?: JobHandler<T>): Consumer<T> {
    this.#checkTopic(topic);
    this.#checkOpen();
    const problem = groupNameProblem(group);
    if (problem) throw new DovetailError("invalid_field", `group: ${problem}`);
    const opts = options ?? {};
    const config = this.#linkConfig(topic, opts.hibernate ?? true);
    const consumer: Consumer<T> = new Consumer<T>(topic, group, config, opts, () => this.#subscriptions.delete(consumer));
    this.#subscriptions.add(consumer);
    if (handler) consumer.done = consumer.run(handler);
    return consumer;
  }

  /**
   * Send `data` to the responders of `topic` and wait for the reply (docs/requests.md). Rejects
   * with `no_responders` at once when nobody serves the topic, `timeout` after `timeoutMs`
   * (default: the bus's, 30 s; a reply that comes later is dropped), `responder_gone` when the
   * responder holding it left, `remote_error` (with `details.remoteCode`) when its handler threw.
   * With `durable: true` the request is stored in the topic and handed out by the responders'
   * group, so another responder answers it when the first one crashes.
   *
   * @example
   * const sum = await bus.request<number>("math.add", { a: 1, b: 2 }, { timeoutMs: 5000 });
   */
  async request<R = unknown>(topic: string, data: unknown, options: RequestOptions = {}): Promise<R> {
    this.#checkTopic(topic);
    this.#checkOpen();
    const timeoutMs = timeoutOf(options, this.#timeoutMs);
    return (await this.#loadRequests()).request(topic, data, timeoutMs, options) as Promise<R>;
  }

  /**
   * Answer the requests of `topic` with `handler`: its return value is the reply, what it throws
   * goes back as `remote_error`. Each request goes to one member of `options.group` (default
   * `default`), round-robin. With `durable: true` it also answers durable requests, as a member
   * of the consumer group of that name. Resolves once the topic counts this responder (a request
   * sent after that finds it); `server.close()` stops it.
   *
   * @example
   * const server = await bus.serve("math.add", ({ a, b }: { a: number; b: number }) => a + b, { group: "adders" });
   */
  async serve<Q = unknown, R = unknown>(topic: string, handler: RequestHandler<Q, R>, options: ServeOptions = {}): Promise<Server> {
    this.#checkTopic(topic);
    this.#checkOpen();
    const timeoutMs = timeoutOf(options, this.#timeoutMs);
    return (await this.#loadRequests()).serve(topic, handler as RequestHandler, options, timeoutMs);
  }

  /** Request/reply is loaded on first use (a chunk of its own for bundlers, decision 025). */
  #loadRequests(): Promise<Requests> {
    this.#requests ??= import("./requests.ts").then(({ Requests }) => {
      const requests = new Requests((topic) => this.#linkConfig(topic, false), { Link, DovetailError, groupNameProblem });
      this.#subscriptions.add(requests);
      if (this.#closed) requests.close();
      return requests;
    });
    return this.#requests;
  }

  /**
   * The agent registry (docs/agents.md): `register()` an agent (present while its connection
   * lives), `list()` / `get()` agents by capability and metadata, `watch()` their lifecycle.
   *
   * @example
   * const me = await bus.agents.register({ id: "planner-1", capabilities: ["plan"] });
   */
  get agents(): Agents {
    return (this.#agents ??= new Agents({
      check: () => this.#checkOpen(),
      request: (method, path, body, options) => this.#request(method, path, body, options),
      subscribe: (topic, options) => this.subscribe(topic, options),
      presence: () => ({ ...this.#linkConfig("", true), url: `${this.#wsBase}/v1/agents/ws`, timeoutMs: this.#timeoutMs }),
      track: (presence) => {
        this.#subscriptions.add(presence);
        return () => this.#subscriptions.delete(presence);
      },
    }));
  }

  /**
   * Agent mail (docs/mail.md): `send`, `inbox`, `read`, `markRead`, `ack`, `search`, `thread`,
   * and `watch` (new mail as it arrives). Every method answers a promise; the client is loaded by
   * the first call (a proxy here keeps the core bundle small; decision 025).
   *
   * @example
   * await bus.mail.send({ from: "planner", to: ["coder"], subject: "build", bodyMd: "Please build **main**." });
   * const { messages } = await bus.mail.inbox("coder", { unread: true });
   */
  get mail(): MailApi {
    const load = () =>
      (this.#mail ??= import("./mail.ts").then(
        ({ MailClient }) => new MailClient({ request: (m, p, b, o) => this.#request(m, p, b, o), subscribe: (t, o) => this.subscribe(t, o) }),
      ));
    // `then` stays undefined so that the proxy is not taken for a promise.
    return new Proxy({} as MailApi, {
      get: (_, k) =>
        k === "then" ? undefined : (...a: unknown[]) => load().then((c) => (c as unknown as Record<string | symbol, (...x: unknown[]) => unknown>)[k]!(...a)),
    });
  }

  /**
   * Durable Streams subscriptions (docs/streams.md "Subscriptions"): the durable cursors that wake
   * a serverless agent by webhook or wake event. Loaded on first use (decision 025).
   *
   * @example
   * const subs = await bus.streamSubscriptions();
   * await subs.put("orders-agent", { type: "webhook", pattern: "orders/*", webhook: { url: "https://agent.example/wake" } });
   */
  async streamSubscriptions(): Promise<StreamSubscriptions> {
    const { StreamSubscriptions } = await import("./ds-subscriptions.ts");
    return new StreamSubscriptions((method, path, body, options) => this.#request(method, path, body, options));
  }

  /** The consumer groups of `topic`, with their floors, lag, pending jobs and members. */
  async groups(topic: string, options?: WaitOptions): Promise<GroupInfo[]> {
    return ((await this.#http("GET", topic, "/groups", options)) as { groups: GroupInfo[] }).groups;
  }

  /** One group's state (`group_not_found` when there is none). */
  async group(topic: string, group: string, options?: WaitOptions): Promise<GroupInfo> {
    return (await this.#http("GET", topic, `/groups/${encodeURIComponent(group)}`, options)) as GroupInfo;
  }

  /** Create a group (or confirm one with the same settings; other settings are a `conflict`). */
  async createGroup(topic: string, group: string, settings: GroupSettingsInput = {}, options?: WaitOptions): Promise<GroupInfo> {
    return (await this.#http("PUT", topic, `/groups/${encodeURIComponent(group)}`, options, settings)) as GroupInfo;
  }

  /**
   * Topic facts over HTTP: head, earliest, message count, bytes, subscribers, retention.
   *
   * @example
   * const { head } = await bus.info("agents.events", { timeoutMs: 5000 });
   */
  async info(topic: string, options?: WaitOptions): Promise<TopicInfo> {
    return (await this.#http("GET", topic, "", options)) as TopicInfo;
  }

  /**
   * One page of the tenant's topics that this credential may see, in name order.
   *
   * @example
   * for (let page = await bus.topics({ prefix: "agents." }); ; page = await bus.topics({ prefix: "agents.", cursor: page.cursor! })) {
   *   for (const t of page.topics) console.log(t.name, t.head);
   *   if (page.cursor === null) break;
   * }
   */
  async topics(options: TopicListOptions = {}): Promise<TopicPage> {
    this.#checkOpen();
    const q = new URLSearchParams();
    for (const key of ["prefix", "pattern", "cursor"] as const) if (options[key] !== undefined) q.set(key, options[key]);
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    const query = q.size > 0 ? `?${q}` : "";
    return (await this.#request("GET", `/v1/topics${query}`, undefined, options)) as TopicPage;
  }

  /**
   * Delete a topic (needs `admin` on it): its subscribers' iterators end with `topic_deleted`,
   * its messages are removed, and a later publish creates a fresh topic from offset 0.
   *
   * @example
   * await bus.deleteTopic("agents.scratch");
   */
  async deleteTopic(topic: string, options?: WaitOptions): Promise<{ topic: string; deleted: true; closedSockets: number }> {
    return (await this.#http("DELETE", topic, "", options)) as { topic: string; deleted: true; closedSockets: number };
  }

  /**
   * Change a topic's settings (needs `admin` on it): its durability level and its retention.
   * Resolves with the topic's info after the change.
   *
   * @example
   * await bus.configure("agents.presence", { durability: "memory" });
   */
  async configure(topic: string, settings: TopicSettings, options?: WaitOptions): Promise<TopicInfo> {
    return (await this.#http("PATCH", topic, "", options, settings)) as TopicInfo;
  }

  /**
   * Read up to `limit` messages over HTTP without subscribing.
   *
   * @example
   * const page = await bus.read("agents.events", { from: 0, limit: 100 });
   */
  async read(topic: string, options: ReadOptions = {}): Promise<ReadResult> {
    const from = wireFrom(options.from ?? "earliest");
    const q = new URLSearchParams();
    if (typeof from === "object") q.set("since", String(from.time));
    else q.set("from", String(from));
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    const body = (await this.#http("GET", topic, `/messages?${q}`, options)) as { messages: DeliveredMessage[]; next: number; head: number; earliest: number };
    return { messages: body.messages.map(decodeMessage), next: body.next, head: body.head, earliest: body.earliest };
  }

  /**
   * Connection events (connecting, connected, disconnected, reconnecting, failed, closed) for
   * every socket of this bus. Each call returns its own iterable; it ends after `closed`.
   *
   * @example
   * for await (const e of bus.status()) console.log(e.type);
   */
  status(): AsyncIterableIterator<StatusEvent> {
    return this.#status.iterate();
  }

  /**
   * Wait for pending publishes (unless `force`), then close every socket. Subscriptions end;
   * further calls fail with `closed`. Pending publishes settle within their own timeouts, so the
   * wait is bounded; `timeoutMs` / `signal` cut it shorter, and then close as `force` does (pending
   * publishes reject with `closed`). `close()` itself never rejects.
   *
   * @example
   * await bus.close({ timeoutMs: 5000 });
   */
  async close(options: { force?: boolean } & WaitOptions = {}): Promise<void> {
    if (this.#closed) return;
    if (!options.force) {
      const drained = async () => {
        await Promise.all([...this.#publishers].map((p) => p.flush({ timeoutMs: Infinity })));
        await Promise.all([...this.#pipes.values()].map((p) => p.idle()));
      };
      const wait = { signal: options.signal, timeoutMs: options.timeoutMs ?? Infinity };
      await waitFor("close", wait, drained).catch(() => undefined); // out of time: close anyway
    }
    if (this.#closed) return;
    this.#closed = true;
    for (const pipe of this.#pipes.values()) pipe.close();
    this.#pipes.clear();
    for (const sub of [...this.#subscriptions]) sub.close();
    this.#subscriptions.clear();
    this.#status.emit({ type: "closed" });
  }

  // -------------------------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#closed) throw new DovetailError("closed", "the bus is closed");
  }

  #checkTopic(topic: string): void {
    const problem = topicNameProblem(topic);
    if (problem) throw new DovetailError("invalid_topic", problem);
  }

  #pipeFor(topic: string): PublishPipe {
    this.#checkOpen();
    let pipe = this.#pipes.get(topic);
    if (!pipe || pipe.failed) {
      this.#checkTopic(topic);
      // Publishers use plain sockets: the topic handles tens of thousands of frames/s on them,
      // against ~1,500/s on hibernatable ones (docs/decisions/006-socket-modes.md).
      // `acks=batch`: one `acks` frame per commit instead of one `ack` per frame (docs/protocol.md).
      const config = this.#linkConfig(topic, false);
      pipe = new PublishPipe({ ...config, url: `${config.url}&acks=batch` });
      this.#pipes.set(topic, pipe);
    }
    return pipe;
  }

  #linkConfig(topic: string, hibernate: boolean): Omit<LinkConfig, "role"> {
    return {
      url: `${this.#wsBase}/v1/topics/${encodeURIComponent(topic)}/ws${hibernate ? "" : "?hibernate=0"}`,
      credentials: this.#credentials,
      topic,
      transport: this.#transport,
      reconnect: this.#options.reconnect ?? {},
      pingIntervalMs: this.#options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      connectTimeoutMs: this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      status: this.#status,
    };
  }

  /** A call's wait options with the bus's default timeout. */
  #wait(options: WaitOptions | undefined): WaitOptions {
    return { signal: options?.signal, timeoutMs: options?.timeoutMs ?? this.#timeoutMs };
  }

  async #http(method: string, topic: string, suffix: string, options?: WaitOptions, body?: unknown): Promise<unknown> {
    this.#checkTopic(topic);
    return this.#request(method, `/v1/topics/${encodeURIComponent(topic)}${suffix}`, body, options);
  }

  async #request(method: string, path: string, body?: unknown, options?: WaitOptions): Promise<unknown> {
    this.#checkOpen();
    return requestJson({ fetch: this.#options.fetch, credentials: this.#credentials }, this.#httpBase, method, path, body, this.#wait(options));
  }
}

/** Failures that retrying may fix: no connection, no answer in time, a server failure, a rate limit. */
function isTransient(error: DovetailError): boolean {
  return error.code === "closed" || error.code === "timeout" || error.code === "internal" || error.code === "rate_limited" || error.code === "storage_full";
}

/**
 * Connect to a bus. Lazy: sockets open when a topic is first used.
 *
 * @example
 * import { connect } from "@dovetail/sdk";
 * const bus = connect("http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
 */
export function connect(url: string, options: ConnectOptions = {}): Bus {
  return new Bus(url, options);
}
