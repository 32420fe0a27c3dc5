/**
 * `connect()` and the Bus: the SDK's entry point. Lazy: no socket opens until a topic is used,
 * then one socket per topic for publishing and one per subscription.
 */
import type { ReconnectOptions } from "./backoff.ts";
import { DovetailError } from "../../protocol/errors.ts";
import type { TopicEntry, TopicPage } from "../../protocol/topic-list.ts";
import { busBases, requestJson } from "./http.ts";
import { decodeMessage, encodeMessage, type Message, type PublishOptions } from "./message.ts";
import { PublishPipe } from "./pipe.ts";
import type { DeliveredMessage } from "../../protocol/frames.ts";
import { Publisher, type PublisherOptions } from "./publisher.ts";
import { StatusHub, type StatusEvent } from "./status.ts";
import { Subscription, wireFrom, type SubscribeOptions } from "./subscription.ts";
import { topicNameProblem } from "../../protocol/topic-name.ts";
import { webSocketTransport, type FetchLike, type Transport } from "./transport.ts";

export interface ConnectOptions {
  /** API token, sent as `Authorization: Bearer` over HTTP (WebSocket: see the transport). */
  token?: string;
  /** How WebSockets are opened. Default: the global `WebSocket` ({@link webSocketTransport}). */
  transport?: Transport;
  /** `fetch` for the HTTP API (`info`, `read`). Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Reconnect backoff; by default retries forever, 100 ms doubling to 5 s, with jitter. */
  reconnect?: ReconnectOptions;
  /** Keep-alive ping after this much silence; a socket silent for twice as long is replaced. Default 15000; 0 disables. */
  pingIntervalMs?: number;
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
}

export type { TopicEntry, TopicPage };

export interface TopicListOptions {
  /** Names starting with this. */
  prefix?: string;
  /** Names matching this pattern: `*` one segment, `>` one or more at the end. */
  pattern?: string;
  /** The `cursor` of the previous page. */
  cursor?: string;
  /** 1 to 1000; default 100. */
  limit?: number;
}

export interface ReadOptions {
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
  readonly #status = new StatusHub();
  readonly #pipes = new Map<string, PublishPipe>();
  readonly #publishers = new Set<Publisher>();
  readonly #subscriptions = new Set<Subscription>();
  #closed = false;

  /** @internal use {@link connect} */
  constructor(url: string, options: ConnectOptions = {}) {
    const { httpBase, wsBase } = busBases(url);
    this.url = url;
    this.#httpBase = httpBase;
    this.#wsBase = wsBase;
    this.#options = options;
    this.#transport = options.transport ?? webSocketTransport();
  }

  /**
   * Publish one message and wait until the topic has stored it.
   *
   * @example
   * const { offset } = await bus.publish("agents.events", { hello: 1 }, { key: "a1", headers: { kind: "greeting" } });
   */
  async publish(topic: string, data: unknown, options?: PublishOptions): Promise<{ offset: number }> {
    const pipe = this.#pipeFor(topic);
    const message = encodeMessage(data, options);
    const max = pipe.limits?.maxMessageBytes;
    if (max !== undefined && message.size > max) {
      throw new DovetailError("message_too_large", `message is ${message.size} bytes; the topic accepts at most ${max}`);
    }
    const r = await pipe.submit(message.json, 1);
    return { offset: r.offset };
  }

  /**
   * A batching publisher for `topic`: `send()` returns a promise of the offset.
   *
   * @example
   * const pub = bus.publisher("agents.events", { lingerMs: 5, maxBatch: 500, maxInFlight: 8 });
   * pub.send({ n: 1 });
   * await pub.flush();
   */
  publisher(topic: string, options?: PublisherOptions): Publisher {
    this.#pipeFor(topic); // checks the name and that the bus is open
    const publisher = new Publisher(topic, () => this.#pipeFor(topic), options);
    this.#publishers.add(publisher);
    return publisher;
  }

  /**
   * Subscribe to `topic`: an async iterator of messages, exactly once and in order across
   * reconnects. Starts at `from` (default `"latest"`).
   *
   * @example
   * for await (const msg of bus.subscribe("agents.events", { from: 0 })) console.log(msg.offset, msg.data);
   */
  subscribe<T = unknown>(topic: string, options: SubscribeOptions = {}): Subscription<T> {
    this.#checkTopic(topic);
    this.#checkOpen();
    const sub: Subscription<T> = new Subscription<T>(topic, this.#linkConfig(topic, options.hibernate ?? true), options, () =>
      this.#subscriptions.delete(sub as Subscription),
    );
    this.#subscriptions.add(sub as Subscription);
    return sub;
  }

  /**
   * Topic facts over HTTP: head, earliest, message count, bytes, subscribers, retention.
   *
   * @example
   * const { head } = await bus.info("agents.events");
   */
  async info(topic: string): Promise<TopicInfo> {
    return (await this.#http("GET", topic, "")) as TopicInfo;
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
    return (await requestJson(this.#options, this.#httpBase, "GET", `/v1/topics${query}`)) as TopicPage;
  }

  /**
   * Delete a topic (needs `admin` on it): its subscribers' iterators end with `topic_deleted`,
   * its messages are removed, and a later publish creates a fresh topic from offset 0.
   *
   * @example
   * await bus.deleteTopic("agents.scratch");
   */
  async deleteTopic(topic: string): Promise<{ topic: string; deleted: true; closedSockets: number }> {
    return (await this.#http("DELETE", topic, "")) as { topic: string; deleted: true; closedSockets: number };
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
    const body = (await this.#http("GET", topic, `/messages?${q}`)) as { messages: DeliveredMessage[]; next: number; head: number; earliest: number };
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
   * further calls fail with `closed`.
   */
  async close(options: { force?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    if (!options.force) {
      await Promise.all([...this.#publishers].map((p) => p.flush()));
      await Promise.all([...this.#pipes.values()].map((p) => p.idle()));
    }
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
      pipe = new PublishPipe(this.#linkConfig(topic, false));
      this.#pipes.set(topic, pipe);
    }
    return pipe;
  }

  #linkConfig(topic: string, hibernate: boolean) {
    const config = {
      url: `${this.#wsBase}/v1/topics/${encodeURIComponent(topic)}/ws${hibernate ? "" : "?hibernate=0"}`,
      topic,
      transport: this.#transport,
      reconnect: this.#options.reconnect ?? {},
      pingIntervalMs: this.#options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
      status: this.#status,
    };
    return this.#options.token ? { ...config, token: this.#options.token } : config;
  }

  async #http(method: string, topic: string, suffix: string): Promise<unknown> {
    this.#checkTopic(topic);
    return requestJson(this.#options, this.#httpBase, method, `/v1/topics/${encodeURIComponent(topic)}${suffix}`);
  }
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
