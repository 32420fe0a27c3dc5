/**
 * Topic: the Durable Object that holds one topic. Thin by design: the log is a TopicLog over
 * this object's SQLite, publishes go through a CommitQueue (group commit), and subscribers are
 * served by a Fanout. This file wires them to WebSockets (hibernation API), RPC and alarms.
 *
 * Only the gateway reaches a Topic: the Worker routes requests to it by name after checking
 * them, and there is no public route to objects.
 */
import { DurableObject } from "cloudflare:workers";
import { DovetailError } from "../protocol/errors.ts";
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
} from "../protocol/frames.ts";
import type { ObjectsEnv as Env } from "./env.ts";
import { CommitQueue, type PublishResult } from "./commit-queue.ts";
import { Fanout } from "./fanout.ts";
import { settingsFromEnv, type TopicSettings } from "./limits.ts";
import { messageJson, prepareMessage, TopicLog, type LogInfo, type PreparedMessage, type Retention } from "./log.ts";
import { knownError, rpcResult, type RpcResult } from "./rpc-result.ts";
import { trimInSteps } from "./storage-guard.ts";
import { apiKeyIdOf, credentialTag } from "../protocol/credential.ts";
import { KEYS_OBJECT_NAME } from "./keys.ts";
import { REPORT_INTERVAL_MS } from "./directory.ts";
import { directoryObjectName, parseTopicObjectName } from "../protocol/topic-address.ts";
import { type SocketGrant } from "../protocol/grant.ts";
import { CLOSE_CODES } from "../protocol/close-codes.ts";
import { readTopicUpgrade } from "../protocol/topic-request.ts";
import { admitFrame, fullBucket, newFrameLimitState, takeTokens, type Bucket } from "./frame-limiter.ts";
import { encodeReadReply, StreamService, type DsAppendRequest, type DsCreateRequest, type DsReadReply, type DsReadRequest, type DsReply } from "./stream-service.ts";
import { StreamState } from "./stream-state.ts";

/** Hibernation tag of Durable Streams waiter sockets (the gateway waiting for data, not subscribers). */
export const DS_WAIT_TAG = "ds-wait";
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
  // Built over this object's storage by #open(), and built again after the topic is deleted.
  #log!: TopicLog;
  #fanout!: Fanout;
  #commits!: CommitQueue;
  #alarmKnown = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = settingsFromEnv(env);
    this.#open();
    // Keep-alives are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
  }

  /** The log, fan-out and commit queue over this object's storage. */
  #open(): void {
    const ctx = this.ctx;
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
        this.#reportSoon(); // Directory: stats at most every few seconds
      },
      {
        flushDelayMs: this.#settings.flushDelayMs,
        maxPendingMessages: MAX_PENDING_MESSAGES,
        durable: () => ctx.storage.sync(),
        extraLingerMs: () => Math.min(MAX_SUBSCRIBER_LINGER_MS, this.#fanout.subscriberCount * LINGER_PER_SUBSCRIBER_MS),
      },
    );
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket

  /** WebSocket upgrade, forwarded by the gateway after its checks. */
  override async fetch(request: Request): Promise<Response> {
    const upgrade = readTopicUpgrade(request);
    if (!upgrade) return new Response("not an upgrade request of the gateway", { status: 400 });
    if (upgrade.kind === "stream-wait") return this.#dsAcceptWaiter(upgrade.after); // Durable Streams long-poll/SSE
    const { topic, hibernate: hibernatable, grant } = upgrade;
    this.#log.nameTopic(topic);
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // An API key's socket is registered with Keys first, so revoking the key finds it; a key
    // revoked since the gateway admitted the upgrade is refused here (issue 18).
    const sid = await this.#registerSocket(grant, topic);
    if (sid === false) return refusedSocket(pair, "the credential this socket was opened with was revoked");
    // Security (issue 5): the gateway's grant says who opened the socket; revocable credentials
    // tag it so closeCredential() finds it (docs/security.md).
    if (hibernatable) {
      this.ctx.acceptWebSocket(server, grant.tag ? [credentialTag(grant.cred)] : []);
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
    this.#fanout.add(server, hibernatable, sid ? { grant, sid } : { grant });
    if (grant.exp !== undefined) void this.#alarmAt(grant.exp);
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
    if (this.#policyClosed.has(ws)) return;
    // Parsed before the rate check so that a refusal names the frame it refuses (issue 18):
    // every frame with an id gets exactly one answer with that id.
    const parsed = parseClientFrame(raw);
    const id = parsed.ok ? ("id" in parsed.frame ? parsed.frame.id : undefined) : parsed.id;
    if (!this.#admitFrame(ws, raw, id)) return;
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
        this.#checkPublish(this.#socketGrant(ws), frame.messages.length);
        // Not awaited: returning lets the next frame in, so it can join the same commit.
        this.#publish(frame.messages, frame.producer).then(
          (r) => ws.send(encodeServerFrame({ type: "ack", id, offset: r.offset, count: r.count, ...(r.duplicate ? { duplicate: true } : {}) })),
          (e: unknown) => ws.send(encodeErrorFrame(asDovetailError(e), id)),
        );
        return;
      }
      case "subscribe": {
        if (!this.#socketGrant(ws).sub) throw new DovetailError("forbidden", "this credential may not subscribe to this topic");
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
    this.#forget(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? CLOSE_CODES.normal : code, reason);
    } catch {
      // Already closed by the runtime.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#forget(ws);
  }

  /** A socket is gone: stop serving it, and unregister an API key's socket from Keys. */
  #forget(ws: WebSocket): void {
    const attachment = this.#fanout.remove(ws);
    const keyId = attachment?.grant ? apiKeyIdOf(attachment.grant.cred) : null;
    if (keyId !== null && attachment?.sid) {
      // Not awaited: a close never waits on Keys. A lost call leaves a row that the key's
      // revocation clears (it then asks this topic to close nothing).
      this.#keys().socketClosed(keyId, attachment.sid).catch((e: unknown) => console.error("topic: socketClosed failed", e));
    }
  }

  #keys() {
    return this.env.KEYS.get(this.env.KEYS.idFromName(KEYS_OBJECT_NAME));
  }

  /** Register an API key's socket with Keys: its id, `null` for other credentials, false when refused. */
  async #registerSocket(grant: SocketGrant, topic: string): Promise<string | null | false> {
    const keyId = grant.tag ? apiKeyIdOf(grant.cred) : null;
    if (keyId === null) return null;
    const sid = crypto.randomUUID();
    return (await this.#keys().socketOpened(keyId, sid, topic)) ? sid : false;
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

  /**
   * Delete the topic: every socket gets a `topic_deleted` error frame and close code 4004
   * (Durable Streams waiters are woken), messages written before this call are committed and
   * then removed with all other storage, and the Directory forgets the topic. A later write
   * creates a fresh topic, from offset 0. Returns how many client sockets were closed.
   */
  async deleteTopic(): Promise<{ closedSockets: number }> {
    this.#commits.flush();
    const notice = encodeErrorFrame(new DovetailError("topic_deleted", "this topic was deleted"));
    const hibernatable = new Set<WebSocket>(this.ctx.getWebSockets());
    const sockets = new Set<WebSocket>(hibernatable);
    for (const [ws] of this.#fanout.sockets()) sockets.add(ws);
    const waiters = new Set(this.ctx.getWebSockets(DS_WAIT_TAG));
    let closedSockets = 0;
    for (const ws of sockets) {
      this.#policyClosed.add(ws);
      try {
        // A socket that is still closing must not bring its subscription into the fresh fan-out.
        if (hibernatable.has(ws)) ws.serializeAttachment({ v: 1 });
        if (!waiters.has(ws)) {
          ws.send(notice);
          closedSockets++;
        }
        ws.close(waiters.has(ws) ? CLOSE_CODES.normal : CLOSE_CODES.topicDeleted, "topic deleted");
      } catch {
        // Already closed.
      }
      this.#forget(ws);
    }
    if (this.#reportTimer !== null) clearTimeout(this.#reportTimer);
    this.#reportTimer = null;
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    await this.#directory().deleted(this.#address().topic, Date.now());
    // Fresh in-memory state over the now empty storage.
    this.#publishBuckets.clear();
    this.#dsServiceInstance = undefined;
    this.#dsStateInstance = undefined;
    this.#dsWaiterCount = null;
    this.#listed = false;
    this.#listing = null;
    this.#alarmKnown = false;
    this.#open();
    return { closedSockets };
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
      ws.close(CLOSE_CODES.credentialEnded, "credential revoked or expired");
    } catch {
      // Already closed.
    }
    this.#forget(ws);
  }

  /**
   * Count one inbound frame against the socket's frame and byte buckets. A refused frame is
   * answered with `rate_limited` + `retryAfterMs`; under sustained abuse the socket is closed
   * with 1008. Returns whether the frame may be handled.
   */
  #admitFrame(ws: WebSocket, raw: string | ArrayBuffer, id: number | undefined): boolean {
    const attachment = this.#fanout.attachment(ws);
    const grant = attachment.grant;
    if (!grant) return true; // refused by #socketGrant() when it tries anything
    const now = Date.now();
    if (grant.exp !== undefined && now >= grant.exp) {
      this.#closeForCredential(ws, "the credential this socket was opened with has expired");
      return false;
    }
    if (!grant.rate) return true;
    // `r` is missing in attachments written before the refusal budget existed.
    if (!attachment.limit?.r) attachment.limit = newFrameLimitState(grant.rate, now);
    const verdict = admitFrame(attachment.limit, grant.rate, frameBytes(raw), now);
    this.#fanout.persist(ws);
    if (verdict.ok) return true;
    try {
      ws.send(encodeErrorFrame(new DovetailError("rate_limited", `too many frames or bytes on this connection; retry after ${verdict.retryAfterMs} ms`, { retryAfterMs: verdict.retryAfterMs }), id));
      if (verdict.close) ws.close(CLOSE_CODES.policyViolation, "rate limit exceeded repeatedly");
    } catch {
      // Already closed.
    }
    if (verdict.close) {
      this.#policyClosed.add(ws);
      this.#forget(ws);
    }
    return false;
  }

  /** What the socket may do. Every socket the gateway opens has a grant; one without may do nothing. */
  #socketGrant(ws: WebSocket): SocketGrant {
    const grant = this.#fanout.attachment(ws).grant;
    if (!grant) throw new DovetailError("forbidden", "this socket carries no grant");
    return grant;
  }

  /** Publish permission and the per-topic, per-credential message bucket. Throws the refusal. */
  #checkPublish(grant: SocketGrant, messages: number): void {
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

  /** Set the topic's retention and apply it now; an age limit is then kept by the alarm. */
  async configure(topic: string, retention: Retention): Promise<TopicInfo> {
    this.#log.nameTopic(topic);
    await this.#ensureListed(); // a setting is a write: it creates the topic
    // The trim comes first, in steps that commit one by one; the setting is stored after it and
    // the alarm last. On a full storage the deletes need only journal room, and the pages they
    // free hold the setting; the alarm is written to a separate scheduler database, so it is set
    // only when an age limit needs it (docs/architecture.md, "Full disk").
    const now = Date.now();
    await trimInSteps(this.#log, now, () => this.ctx.storage.sync(), retention);
    this.#log.setRetention(retention);
    if (retention.maxAgeMs > 0) {
      await this.#alarmAt(now + Math.min(retention.maxAgeMs, RETENTION_CHECK_MS));
      this.#alarmKnown = true;
    }
    return this.info(topic);
  }

  // -------------------------------------------------------------------------------------------
  // Alarm: retention and producer expiry

  override async alarm(): Promise<void> {
    this.#alarmKnown = false;
    const now = Date.now();
    const nextExpiry = this.#closeExpiredSockets(now);
    this.#commits.flush();
    // Deletes first, in steps, and alarms after: on a full storage the trim is what can still
    // be written (docs/architecture.md, "Full disk").
    await trimInSteps(this.#log, now, () => this.ctx.storage.sync());
    this.#log.expireProducers(now);
    if (nextExpiry !== null) await this.#alarmAt(nextExpiry);
    if (this.#log.retention.maxAgeMs > 0 && this.#log.head > this.#log.earliest) {
      await this.#alarmAt(now + Math.min(this.#log.retention.maxAgeMs, RETENTION_CHECK_MS));
      this.#alarmKnown = true;
    }
  }

  /**
   * Close the sockets whose credential expired by `now` (a JWT's `exp`, an API key's expiry):
   * a silent subscriber sends no frame that would notice. Returns the next expiry, or null.
   */
  #closeExpiredSockets(now: number): number | null {
    let next: number | null = null;
    for (const [ws, attachment] of [...this.#fanout.sockets()]) {
      const exp = attachment.grant?.exp;
      if (exp === undefined) continue;
      if (exp <= now) this.#closeForCredential(ws, "the credential this socket was opened with has expired");
      else if (next === null || exp < next) next = exp;
    }
    return next;
  }

  /** Make sure the alarm fires at `at` or earlier (it may fire earlier for another reason). */
  async #alarmAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || at < current) await this.ctx.storage.setAlarm(at);
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
      const prepared = this.#prepare(messages);
      const listing = this.#ensureListed();
      // The first write of a new topic waits until the Directory lists it, so a topic that holds
      // an acknowledged message is always found; later writes do not wait.
      if (listing) return listing.then(() => this.#commits.submit(prepared, producer));
      return this.#commits.submit(prepared, producer);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  // ---- Directory: the tenant's index of topics (objects/directory.ts) ----

  /** Whether the Directory lists this topic. A topic with storage was listed when it was created. */
  #listed = false;
  #listing: Promise<void> | null = null;
  #lastReportAt = 0;
  #reportTimer: ReturnType<typeof setTimeout> | null = null;

  #address() {
    const address = parseTopicObjectName(this.ctx.id.name);
    if (!address) throw new DovetailError("internal", `topic object without a topic name (${String(this.ctx.id.name)})`);
    return address;
  }

  #directory() {
    return this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(directoryObjectName(this.#address().tenant)));
  }

  /** Null when the topic is listed; otherwise a promise that lists it (one at a time). */
  #ensureListed(): Promise<void> | null {
    if (this.#listed || this.#log.exists) return null;
    this.#listing ??= this.#directory()
      .created(this.#address().topic, Date.now())
      .then(
        () => {
          this.#listed = true;
        },
        (error: unknown) => {
          this.#listing = null;
          throw knownError(error) ?? new DovetailError("internal", "the topic could not be listed in the tenant's directory; nothing was stored", {}, { cause: error });
        },
      );
    return this.#listing;
  }

  /** Report stats to the Directory now if the last report is old enough, else once when it is. */
  #reportSoon(): void {
    if (this.#reportTimer !== null) return;
    const wait = this.#lastReportAt + REPORT_INTERVAL_MS - Date.now();
    if (wait <= 0) this.#report();
    else this.#reportTimer = setTimeout(() => this.#report(), wait);
  }

  #report(): void {
    this.#reportTimer = null;
    this.#lastReportAt = Date.now();
    const info = this.#log.info();
    const stats = { lastActive: info.lastTime, head: info.head, messages: info.messages, bytes: info.bytes, subscribers: this.#fanout.subscriberCount };
    this.#directory()
      .report(this.#address().topic, stats, this.#lastReportAt)
      .catch((e: unknown) => console.error("topic: directory report failed", e));
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
    await this.#ensureListed();
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
   * The gateway waits for data after offset `after`: accept a hibernatable socket tagged as a
   * waiter (not a subscriber), or answer 200 at once when there is already something to see.
   */
  #dsAcceptWaiter(after: number): Response {
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
          ws.close(CLOSE_CODES.normal, "wake");
        } catch {
          // Already closing.
        }
      } else left++;
    }
    this.#dsWaiterCount = left;
  }
}

/**
 * Size of an inbound frame for the byte bucket. String length counts UTF-16 units: at most the
 * UTF-8 size for ASCII, within 3x otherwise. Binary frames reach listeners of accept()ed sockets
 * as ArrayBuffers here, but anything without a length counts as one byte rather than NaN (a NaN
 * once turned every later frame into `rate_limited` with `retryAfterMs: null`, issue 18).
 */
function frameBytes(raw: string | ArrayBuffer): number {
  if (typeof raw === "string") return raw.length;
  const n = (raw as { byteLength?: unknown }).byteLength ?? (raw as { size?: unknown }).size;
  return typeof n === "number" && Number.isFinite(n) ? n : 1;
}

/** Answer an upgrade that is refused after all: one `unauthorized` error frame, then 4401. */
function refusedSocket(pair: { 0: WebSocket; 1: WebSocket }, message: string): Response {
  const server = pair[1];
  server.accept();
  server.send(encodeErrorFrame(new DovetailError("unauthorized", message)));
  server.close(CLOSE_CODES.credentialEnded, "credential revoked or expired");
  return new Response(null, { status: 101, webSocket: pair[0] });
}

function asDovetailError(error: unknown): DovetailError {
  const known = knownError(error); // a DovetailError, or a full storage as `storage_full`
  if (known) return known;
  console.error("topic: unexpected error", error);
  return new DovetailError("internal", "internal error", {}, { cause: error });
}
