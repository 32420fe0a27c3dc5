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
import { credentialTag } from "../workers/auth/credential.ts";
import { CREDENTIAL_CLOSE_CODE, readGrant, type SocketGrant } from "../workers/auth/socket-grant.ts";
import { ABUSE_CLOSE_CODE, admitFrame, fullBucket, newFrameLimitState, takeTokens, type Bucket } from "./frame-limiter.ts";
import { encodeReadReply, StreamService, type DsAppendRequest, type DsCreateRequest, type DsReadReply, type DsReadRequest, type DsReply } from "./stream-service.ts";
import { StreamState } from "./stream-state.ts";

/** Durable Streams: on an upgrade, marks a gateway waiting for data after this offset (not a subscriber). */
export const DS_WAIT_HEADER = "X-Dovetail-Stream-Wait";
/** Hibernation tag of those waiter sockets. */
export const DS_WAIT_TAG = "ds-wait";
/** Header with which the gateway tells the object its topic name on WebSocket upgrades. */
export const TOPIC_NAME_HEADER = "X-Dovetail-Topic";
/** Most messages per delivered frame and per catch-up page. */
export const PAGE_MESSAGES = 1000;
/** Most payload bytes per catch-up page (a frame stays well under the runtime's frame limit). */
export const PAGE_BYTES = 512 * 1024;
/** Flush at once when this many messages wait for the group commit. */
export const MAX_PENDING_MESSAGES = 20_000;
/** Group-commit linger added per subscriber, and its cap (see CommitQueueOptions.extraLingerMs). */
export const LINGER_PER_SUBSCRIBER_MS = 0.25;
export const MAX_SUBSCRIBER_LINGER_MS = 8;
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
        this.#dsAfterCommit(); // Durable Streams: persist producer state with this commit, wake waiters
      },
      {
        flushDelayMs: this.#settings.flushDelayMs,
        maxPendingMessages: MAX_PENDING_MESSAGES,
        durable: () => ctx.storage.sync(),
        extraLingerMs: () => Math.min(MAX_SUBSCRIBER_LINGER_MS, this.#fanout.subscriberCount * LINGER_PER_SUBSCRIBER_MS),
      },
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
    if (request.headers.has(DS_WAIT_HEADER)) return this.#dsAcceptWaiter(request); // Durable Streams long-poll/SSE
    this.#log.nameTopic(topic);
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    const hibernatable = new URL(request.url).searchParams.get("hibernate") !== "0";
    // Security (issue 5): the gateway's grant says who opened the socket; revocable credentials
    // tag it so closeCredential() finds it (docs/security.md).
    const grant = readGrant(request.headers);
    if (hibernatable) {
      this.ctx.acceptWebSocket(server, grant?.tag ? [credentialTag(grant.cred)] : []);
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
    this.#fanout.add(server, hibernatable, grant ? { grant } : {});
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
    if (!this.#admitFrame(ws, raw)) return;
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
        this.#checkPublish(this.#fanout.attachment(ws).grant, frame.messages.length);
        // Not awaited: returning lets the next frame in, so it can join the same commit.
        this.#publish(frame.messages, frame.producer).then(
          (r) => ws.send(encodeServerFrame({ type: "ack", id, offset: r.offset, count: r.count, ...(r.duplicate ? { duplicate: true } : {}) })),
          (e: unknown) => ws.send(encodeErrorFrame(asDovetailError(e), id)),
        );
        return;
      }
      case "subscribe": {
        const grant = this.#fanout.attachment(ws).grant;
        if (grant && !grant.sub) throw new DovetailError("forbidden", "this credential may not subscribe to this topic");
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

  /**
   * Append messages (already validated by the gateway); resolves once they are durable.
   * `publisher` (credential id and limits) applies the per-topic publish limit to HTTP publishes.
   */
  async publish(topic: string, messages: PublishMessage[], producer?: ProducerStamp, publisher?: Pick<SocketGrant, "cred" | "rate">): Promise<RpcResult<PublishResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => {
      if (publisher) this.#checkPublish({ ...publisher, pub: true, sub: false }, messages.length);
      return this.#publish(messages, producer);
    });
  }

  /**
   * Close every socket opened with credential `credentialId` (a revoked API key): an
   * `unauthorized` error frame, then close code 4401. Returns how many were closed.
   */
  async closeCredential(credentialId: string): Promise<number> {
    const sockets = new Set(this.ctx.getWebSockets(credentialTag(credentialId)));
    for (const [ws, attachment] of this.#fanout.sockets()) if (attachment.grant?.cred === credentialId) sockets.add(ws);
    for (const ws of sockets) this.#closeForCredential(ws, "the credential this socket was opened with was revoked");
    return sockets.size;
  }

  // -------------------------------------------------------------------------------------------
  // Security hooks (issue 5): per-connection frame limits, credential expiry, per-topic limits.

  /** Per-topic publish buckets by credential id (in memory: an idle topic forgets them, which only refills them). */
  readonly #publishBuckets = new Map<string, Bucket>();
  /** Sockets this object closed for policy (revoked, expired, abuse): frames still queued on them are dropped. */
  readonly #policyClosed = new WeakSet<WebSocket>();

  #closeForCredential(ws: WebSocket, message: string): void {
    this.#policyClosed.add(ws);
    try {
      ws.send(encodeErrorFrame(new DovetailError("unauthorized", message)));
      ws.close(CREDENTIAL_CLOSE_CODE, "credential revoked or expired");
    } catch {
      // Already closed.
    }
    this.#fanout.remove(ws);
  }

  /**
   * Count one inbound frame against the socket's frame and byte buckets. A refused frame is
   * answered with `rate_limited` + `retryAfterMs`; under sustained abuse the socket is closed
   * with 1008. Returns whether the frame may be handled.
   */
  #admitFrame(ws: WebSocket, raw: string | ArrayBuffer): boolean {
    if (this.#policyClosed.has(ws)) return false;
    const attachment = this.#fanout.attachment(ws);
    const grant = attachment.grant;
    if (!grant) return true;
    const now = Date.now();
    if (grant.exp !== undefined && now >= grant.exp) {
      this.#closeForCredential(ws, "the credential this socket was opened with has expired");
      return false;
    }
    if (!grant.rate) return true;
    attachment.limit ??= newFrameLimitState(grant.rate, now);
    // String length counts UTF-16 units: at most the UTF-8 size for ASCII, within 3x otherwise.
    const verdict = admitFrame(attachment.limit, grant.rate, typeof raw === "string" ? raw.length : raw.byteLength, now);
    this.#fanout.persist(ws);
    if (verdict.ok) return true;
    try {
      ws.send(encodeErrorFrame(new DovetailError("rate_limited", `too many frames or bytes on this connection; retry after ${verdict.retryAfterMs} ms`, { retryAfterMs: verdict.retryAfterMs })));
      if (verdict.close) ws.close(ABUSE_CLOSE_CODE, "rate limit exceeded repeatedly");
    } catch {
      // Already closed.
    }
    if (verdict.close) {
      this.#policyClosed.add(ws);
      this.#fanout.remove(ws);
    }
    return false;
  }

  /** Publish permission and the per-topic, per-credential message bucket. Throws the refusal. */
  #checkPublish(grant: SocketGrant | undefined, messages: number): void {
    if (!grant) return;
    if (!grant.pub) throw new DovetailError("forbidden", "this credential may not publish to this topic");
    const rate = grant.rate;
    if (!rate) return;
    const now = Date.now();
    let bucket = this.#publishBuckets.get(grant.cred);
    if (!bucket) this.#publishBuckets.set(grant.cred, (bucket = fullBucket(rate.topicMessageBurst, now)));
    const wait = takeTokens(bucket, rate.topicMessagesPerSecond, rate.topicMessageBurst, messages, now);
    if (wait > 0) {
      throw new DovetailError("rate_limited", `this credential publishes to this topic faster than ${rate.topicMessagesPerSecond} messages/s; retry after ${wait} ms`, { retryAfterMs: wait });
    }
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
      this.#dsCheckPublish(); // Durable Streams: a closed stream takes no more messages, from any path
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

  // ---- Durable Streams (HTTP) ----
  // The protocol's operations on this topic (workers/routes/streams.ts calls them). The logic is
  // in StreamService over StreamState (objects/stream-*.ts); messages go through this topic's
  // commit queue and log, so HTTP and WebSocket share offsets and order. Readers waiting for data
  // hold a hibernatable WebSocket to this object, which it closes when data arrives
  // (docs/decisions/008-streams-state-and-waiting.md).

  #dsServiceInstance: StreamService | undefined;
  #dsStateInstance: StreamState | undefined;
  /** Upper bound of open waiter sockets (null: unknown since wake); saves a lookup per commit. */
  #dsWaiterCount: number | null = null;

  #ds(): StreamService {
    if (!this.#dsServiceInstance) {
      this.#dsStateInstance = new StreamState(this.ctx.storage.sql);
      this.#dsServiceInstance = new StreamService({
        log: this.#log,
        state: this.#dsStateInstance,
        submit: (messages) => this.#commits.submit(messages),
        flush: () => this.#commits.flush(),
        waiting: () => this.#commits.waitingMessages,
        wakeAll: () => this.#dsWake(true),
        pageMessages: PAGE_MESSAGES,
        pageBytes: PAGE_BYTES,
      });
    }
    return this.#dsServiceInstance;
  }

  async dsCreate(topic: string, req: DsCreateRequest): Promise<DsReply> {
    this.#log.nameTopic(topic);
    return this.#ds().create(req, Date.now());
  }

  async dsAppend(topic: string, req: DsAppendRequest): Promise<DsReply> {
    this.#log.nameTopic(topic);
    return this.#ds().append(req, Date.now());
  }

  async dsRead(topic: string, req: DsReadRequest): Promise<DsReadReply> {
    this.#log.nameTopic(topic);
    return this.#ds().read(req, Date.now());
  }

  async dsHead(_topic: string): Promise<DsReply> {
    return this.#ds().head(Date.now());
  }

  async dsDelete(_topic: string): Promise<{ reply: DsReply; releaseSource: string | null }> {
    return this.#ds().delete(Date.now());
  }

  async dsForkSource(_topic: string, offset: number | null, subOffset: number) {
    return this.#ds().forkSource(offset, subOffset, Date.now());
  }

  /** A fork of this stream was created (+1) or deleted (-1); returns this stream's source to release in turn. */
  async dsForkRef(_topic: string, delta: 1 | -1): Promise<string | null> {
    return this.#ds().forkRef(delta);
  }

  /**
   * A gateway waits for data after offset `DS_WAIT_HEADER`: accept a hibernatable socket tagged
   * as a waiter (not a subscriber), or answer 200 at once when there is already something to see.
   */
  #dsAcceptWaiter(request: Request): Response {
    const after = Number(request.headers.get(DS_WAIT_HEADER));
    this.#ds();
    const record = this.#dsStateInstance!.record;
    if (!record || record.closed || record.softDeleted || this.#log.head > after) return new Response(null, { status: 200 });
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1], [DS_WAIT_TAG]);
    pair[1].serializeAttachment({ v: 1, dsWait: after });
    this.#dsWaiterCount = (this.#dsWaiterCount ?? 0) + 1;
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** WebSocket and /v1/topics publishes to a topic whose stream was closed over HTTP fail. */
  #dsCheckPublish(): void {
    this.#ds();
    if (this.#dsStateInstance!.record?.closed) {
      throw new DovetailError("stream_closed", "this topic's stream was closed (Stream-Closed); it takes no more messages");
    }
  }

  #dsAfterCommit(): void {
    this.#dsStateInstance?.persist();
    if (this.#dsWaiterCount !== 0) this.#dsWake(false);
  }

  /**
   * Close waiter sockets whose offset now has data, first sending each the read it would make
   * (one read per distinct offset), or close all of them (stream closed or deleted).
   */
  #dsWake(all: boolean): void {
    const waiters = this.ctx.getWebSockets(DS_WAIT_TAG);
    let left = 0;
    const replies = new Map<number, string>();
    for (const ws of waiters) {
      const at = (ws.deserializeAttachment() as { dsWait?: number } | null)?.dsWait ?? -1;
      if (all || this.#log.head > at) {
        try {
          if (!all && at >= 0) {
            let reply = replies.get(at);
            if (reply === undefined) {
              reply = encodeReadReply(this.#ds().read({ offset: { kind: "at", next: at }, live: true, ifNoneMatch: null }, Date.now()));
              replies.set(at, reply);
            }
            ws.send(reply);
          }
          ws.close(1000, "wake");
        } catch {
          // Already closing.
        }
      } else left++;
    }
    this.#dsWaiterCount = left;
  }
}

function asDovetailError(error: unknown): DovetailError {
  if (error instanceof DovetailError) return error;
  console.error("topic: unexpected error", error);
  return new DovetailError("internal", "internal error", {}, { cause: error });
}
