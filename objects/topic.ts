/**
 * Topic: the Durable Object that holds one topic. Thin by design: the log is a TopicLog over
 * this object's SQLite, publishes go through a CommitQueue (group commit), and subscribers are
 * served by a Fanout. This file wires them to WebSockets (hibernation API), RPC and alarms.
 *
 * Only the gateway reaches a Topic: the Worker routes requests to it by name after checking
 * them, and there is no public route to objects.
 */
import { DurableObject } from "cloudflare:workers";
import { DovetailError } from "../sdk/src/errors.ts";
import {
  encodeErrorFrame,
  encodeServerFrame,
  parseClientFrame,
  PING_TEXT,
  PONG_TEXT,
  PROTOCOL_VERSION,
  DEFAULT_CREDIT,
  type ClientFrame,
  type ProducerStamp,
  type PublishMessage,
  type SubscribeFrom,
} from "../sdk/src/protocol.ts";
import type { Env } from "../workers/env.ts";
import { CommitQueue, type PublishResult } from "./commit-queue.ts";
import { Fanout } from "./fanout.ts";
import { settingsFromEnv, type TopicSettings } from "./limits.ts";
import { messageJson, prepareMessage, TopicLog, type LogInfo, type PreparedMessage, type Retention } from "./log.ts";
import { rpcResult, type RpcResult } from "./rpc-result.ts";

/** Header with which the gateway tells the object its topic name on WebSocket upgrades. */
export const TOPIC_NAME_HEADER = "X-Dovetail-Topic";
/** Most messages per delivered frame and per catch-up page. */
export const PAGE_MESSAGES = 1000;
/** Most payload bytes per catch-up page (a frame stays well under the runtime's frame limit). */
export const PAGE_BYTES = 512 * 1024;
/** Flush at once when this many messages wait for the group commit. */
export const MAX_PENDING_MESSAGES = 20_000;
/** How often retention runs while a topic has an age limit. */
export const RETENTION_CHECK_MS = 10_000;

export interface TopicInfo extends LogInfo {
  subscribers: number;
}

export interface ReadResult {
  /** JSON array text of the messages read (the same objects as in a `messages` frame). */
  messagesJson: string;
  count: number;
  /** Offset to read from next. */
  next: number;
  head: number;
  earliest: number;
}

export class Topic extends DurableObject<Env> {
  readonly #settings: TopicSettings;
  readonly #log: TopicLog;
  readonly #fanout: Fanout;
  readonly #commits: CommitQueue;
  #alarmKnown = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = settingsFromEnv(env);
    this.#log = new TopicLog(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn), {
      topic: "",
      retention: this.#settings.retention,
    });
    this.#fanout = new Fanout(this.#log, ctx.getWebSockets(), { pageMessages: PAGE_MESSAGES, pageBytes: PAGE_BYTES });
    this.#commits = new CommitQueue(
      this.#log,
      (batch) => {
        this.#fanout.onCommit(batch);
        this.#scheduleMaintenance();
      },
      { flushDelayMs: this.#settings.flushDelayMs, maxPendingMessages: MAX_PENDING_MESSAGES },
    );
    // Keep-alives are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket

  /** WebSocket upgrade, forwarded by the gateway after its checks. */
  override async fetch(request: Request): Promise<Response> {
    const topic = request.headers.get(TOPIC_NAME_HEADER);
    if (!topic) return new Response("missing topic name", { status: 400 });
    this.#log.nameTopic(topic);
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    const hibernatable = new URL(request.url).searchParams.get("hibernate") !== "0";
    if (hibernatable) {
      this.ctx.acceptWebSocket(server);
    } else {
      // `?hibernate=0`: a plain socket for high-rate publishers. workerd dispatches each frame
      // of a hibernatable socket as its own event (~1,500 frames/s here, measured) but frames of
      // an accepted socket as listener calls (~80,000/s). The price: while such a socket is
      // open the object stays in memory (docs/decisions/006-socket-modes.md).
      server.accept();
      server.addEventListener("message", (e) => void this.webSocketMessage(server, e.data as string | ArrayBuffer));
      server.addEventListener("close", (e) => void this.webSocketClose(server, e.code, e.reason));
      server.addEventListener("error", () => void this.webSocketError(server));
    }
    this.#fanout.add(server, hibernatable);
    server.send(
      encodeServerFrame({
        type: "welcome",
        version: PROTOCOL_VERSION,
        topic,
        head: this.#log.head,
        earliest: this.#log.earliest,
        limits: this.#settings.limits,
      }),
    );
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    if (raw === PING_TEXT) {
      // Hibernatable sockets get this from the runtime's auto-response; plain ones from here.
      ws.send(PONG_TEXT);
      return;
    }
    const parsed = parseClientFrame(raw);
    if (!parsed.ok) {
      ws.send(encodeErrorFrame(parsed.error, parsed.id));
      return;
    }
    try {
      this.#onFrame(ws, parsed.frame);
    } catch (error) {
      ws.send(encodeErrorFrame(asDovetailError(error), "id" in parsed.frame ? parsed.frame.id : undefined));
    }
  }

  #onFrame(ws: WebSocket, frame: ClientFrame): void {
    switch (frame.type) {
      case "publish": {
        const id = frame.id;
        // Not awaited: returning lets the next frame in, so it can join the same commit.
        this.#publish(frame.messages, frame.producer).then(
          (r) => ws.send(encodeServerFrame({ type: "ack", id, offset: r.offset, count: r.count, ...(r.duplicate ? { duplicate: true } : {}) })),
          (e: unknown) => ws.send(encodeErrorFrame(asDovetailError(e), id)),
        );
        return;
      }
      case "subscribe": {
        if (this.#fanout.subscription(ws)) {
          throw new DovetailError("already_subscribed", "this socket already has a subscription; open another socket or unsubscribe first");
        }
        const next = this.#log.resolveFrom(frame.from);
        // `subscribed` goes out before any delivery: deliveries start on a later turn.
        ws.send(encodeServerFrame({ type: "subscribed", id: frame.id, next }));
        this.#fanout.subscribe(ws, frame.id, next, frame.credit ?? DEFAULT_CREDIT);
        return;
      }
      case "credit": {
        if (!this.#fanout.subscription(ws)) throw new DovetailError("not_subscribed", "credit without a subscription");
        this.#fanout.grant(ws, frame.messages);
        return;
      }
      case "unsubscribe": {
        if (!this.#fanout.subscription(ws)) throw new DovetailError("not_subscribed", "nothing to unsubscribe");
        this.#fanout.unsubscribe(ws);
        ws.send(encodeServerFrame({ type: "unsubscribed", id: frame.id }));
        return;
      }
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.#fanout.remove(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed by the runtime.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#fanout.remove(ws);
  }

  // -------------------------------------------------------------------------------------------
  // RPC (called by the gateway)

  /** Append messages (already validated by the gateway); resolves once they are durable. */
  async publish(topic: string, messages: PublishMessage[], producer?: ProducerStamp): Promise<RpcResult<PublishResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => this.#publish(messages, producer));
  }

  /** Read up to `limit` messages from `from`. */
  async read(topic: string, from: SubscribeFrom, limit: number): Promise<RpcResult<ReadResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => this.#read(from, limit));
  }

  #read(from: SubscribeFrom, limit: number): ReadResult {
    const start = this.#log.resolveFrom(from);
    const rows = this.#log.read(start, Math.min(limit, PAGE_MESSAGES), PAGE_BYTES);
    const parts = rows.map((r) => messageJson(r.offset, r.time, r.body));
    return {
      messagesJson: `[${parts.join(",")}]`,
      count: rows.length,
      next: start + rows.length,
      head: this.#log.head,
      earliest: this.#log.earliest,
    };
  }

  async info(topic: string): Promise<TopicInfo> {
    this.#log.nameTopic(topic);
    return { ...this.#log.info(), subscribers: this.#fanout.subscriberCount };
  }

  /** Set the topic's retention; applied by the next alarm (scheduled now). */
  async configure(topic: string, retention: Retention): Promise<TopicInfo> {
    this.#log.nameTopic(topic);
    this.#log.setRetention(retention);
    await this.ctx.storage.setAlarm(Date.now());
    this.#alarmKnown = true;
    return this.info(topic);
  }

  // -------------------------------------------------------------------------------------------
  // Alarm: retention and producer expiry

  override async alarm(): Promise<void> {
    this.#alarmKnown = false;
    const now = Date.now();
    this.#commits.flush();
    this.#log.enforceRetention(now);
    this.#log.expireProducers(now);
    if (this.#log.retention.maxAgeMs > 0 && this.#log.head > this.#log.earliest) {
      await this.ctx.storage.setAlarm(now + Math.min(this.#log.retention.maxAgeMs, RETENTION_CHECK_MS));
      this.#alarmKnown = true;
    }
  }

  /** After a commit: make sure an alarm will apply retention. One storage call per wake at most. */
  #scheduleMaintenance(): void {
    if (this.#alarmKnown || !this.#log.hasRetention()) return;
    this.#alarmKnown = true;
    void this.ctx.storage.getAlarm().then((at) => {
      if (at === null) return this.ctx.storage.setAlarm(Date.now() + RETENTION_CHECK_MS);
    });
  }

  // -------------------------------------------------------------------------------------------

  #publish(messages: PublishMessage[], producer?: ProducerStamp): Promise<PublishResult> {
    try {
      return this.#commits.submit(this.#prepare(messages), producer);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #prepare(messages: PublishMessage[]): PreparedMessage[] {
    const { maxMessageBytes, maxBatchMessages, maxBatchBytes } = this.#settings.limits;
    if (messages.length > maxBatchMessages) {
      throw new DovetailError("batch_too_large", `a publish may carry at most ${maxBatchMessages} messages; got ${messages.length}`);
    }
    let total = 0;
    const prepared = messages.map((m, i) => {
      const p = prepareMessage(m, maxMessageBytes, i);
      total += p.size;
      return p;
    });
    if (total > maxBatchBytes) {
      throw new DovetailError("batch_too_large", `a publish may carry at most ${maxBatchBytes} payload bytes; got ${total}`);
    }
    return prepared;
  }
}

function asDovetailError(error: unknown): DovetailError {
  if (error instanceof DovetailError) return error;
  console.error("topic: unexpected error", error);
  return new DovetailError("internal", "internal error", {}, { cause: error });
}
