/**
 * Topic: the Durable Object that holds one topic, and the host of its feature modules
 * (objects/topic-module.ts). The object owns the SQL handle, the commit queue, the sockets and
 * the one alarm; the log is a TopicLog over this object's SQLite, publishes go through a
 * CommitQueue (group commit), and each feature is a module registered in {@link Topic.#open}:
 *
 * | module | file | does |
 * |---|---|---|
 * | fan-out | fanout.ts | delivers commits to subscribers within their credit |
 * | connection policy | connection-policy.ts | grants, frame and publish limits, Keys registration, revocation |
 * | credential expiry | credential-expiry.ts | closes sockets when their credential expires |
 * | retention | retention.ts | trims by age, count and bytes; forgets idle producers |
 * | Directory reporter | directory-reporter.ts | lists the topic before its first write, reports stats |
 * | Durable Streams | streams-module.ts | the `ds*` operations and the gateway's waiter sockets |
 * | consumer groups | groups/groups-module.ts | groups, their members, acks, redelivery, dead letters |
 * | subscription links | subscription-links.ts | tells linked Durable Streams subscriptions that the tail moved |
 * | request/reply | requests/requests-module.ts | responders, requests waiting for replies, durable requests |
 * | metrics | topic-metrics.ts | counts in memory for `GET /metrics`, taken by the Directory reporter |
 *
 * Only the gateway reaches a Topic: by RPC, and by upgrade requests it builds from scratch
 * (protocol/topic-request.ts). There is no public route to objects.
 */
import { DurableObject } from "cloudflare:workers";
import { CLOSE_CODES } from "../protocol/close-codes.ts";
import { DovetailError } from "../protocol/errors.ts";
import {
  DEFAULT_CREDIT,
  encodeAcksFrame,
  encodeErrorFrame,
  encodeServerFrame,
  PING_TEXT,
  PONG_TEXT,
  PROTOCOL_VERSION,
  type AckEntry,
  type ClientFrame,
  type ProducerStamp,
  type PublishMessage,
  type SubscribeFrom,
} from "../protocol/frames.ts";
import { parseClientFrame } from "../protocol/frame-schemas.ts";
import type { SocketGrant } from "../protocol/grant.ts";
import { directoryObjectName, parseTopicObjectName, topicObjectName } from "../protocol/topic-address.ts";
import { readTopicUpgrade } from "../protocol/topic-request.ts";
import { credentialTag } from "../protocol/credential.ts";
import { AlarmScheduler } from "./alarm-scheduler.ts";
import { CommitQueue, type PublishResult } from "./commit-queue.ts";
import { ConnectionPolicy, refusedSocket } from "./connection-policy.ts";
import { CredentialExpiry } from "./credential-expiry.ts";
import { DirectoryReporter } from "./directory-reporter.ts";
import type { ObjectsEnv as Env } from "./env.ts";
import { Fanout } from "./fanout.ts";
import { KEYS_OBJECT_NAME } from "./keys.ts";
import { MAX_PENDING_MESSAGES, settingsFromEnv, type TopicSettings } from "./limits.ts";
import { deliveredMessageJson } from "../protocol/stored-message.ts";
import { prepareMessage, TopicLog, type LogInfo, type PreparedMessage, type Retention } from "./log.ts";
import { RetentionModule } from "./retention.ts";
import { asDovetailError, rpcResult, type RpcResult } from "./rpc-result.ts";
import type {
  DsAppendRequest,
  DsAppendResult,
  DsCreateRequest,
  DsCreateResult,
  DsDeleteResult,
  DsForkSource,
  DsReadReply,
  DsReadRequest,
  DsStreamInfo,
} from "../protocol/stream-rpc.ts";
import { DS_WAIT_TAG, StreamsModule } from "./streams-module.ts";
import { GroupsModule } from "./groups/groups-module.ts";
import type { GroupCall, GroupReplies } from "../protocol/groups.ts";
import type { TopicModule } from "./topic-module.ts";
import { SubscriptionLinks } from "./subscription-links.ts";
import { subscriptionObjectName } from "../protocol/ds-subscriptions.ts";
import { RequestsModule } from "./requests/requests-module.ts";
import { TopicMetrics } from "./topic-metrics.ts";
import type { RequestReply } from "../protocol/requests.ts";
import type { Durability } from "../protocol/durability.ts";

export { DS_WAIT_TAG };
/** Most messages per delivered frame and per catch-up page. */
export const PAGE_MESSAGES = 1000;
/** Most payload bytes per catch-up page (a frame stays well under the runtime's frame limit). */
export const PAGE_BYTES = 512 * 1024;
/** Group-commit linger added per subscriber, and its cap (see CommitQueueOptions.extraLingerMs). */
export const LINGER_PER_SUBSCRIBER_MS = 0.25;
export const MAX_SUBSCRIBER_LINGER_MS = 8;

export interface TopicInfo extends LogInfo {
  subscribers: number;
}

/** What `configure` may change; an absent field is left as it is. */
export interface TopicSettingsChange {
  retention?: Retention;
  durability?: Durability;
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
  readonly #alarms: AlarmScheduler;
  // Built over this object's storage by #open(), and built again after the topic is deleted.
  #log!: TopicLog;
  #fanout!: Fanout;
  #commits!: CommitQueue;
  #policy!: ConnectionPolicy;
  #retention!: RetentionModule;
  #streams!: StreamsModule;
  #reporter!: DirectoryReporter;
  #groups!: GroupsModule;
  #subLinks!: SubscriptionLinks;
  #requests!: RequestsModule;
  #modules: TopicModule[] = [];
  /** Answers of `?acks=batch` sockets waiting for the end of their commit's turn ({@link Topic.#queueAck}). */
  readonly #acksWaiting = new Map<WebSocket, AckEntry[]>();
  /** Which module answers each client frame type the topic itself does not. */
  #frameModules = new Map<string, TopicModule>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = settingsFromEnv(env);
    this.#alarms = new AlarmScheduler(ctx.storage, () => this.#modules);
    this.#open();
    // Keep-alives are answered by the runtime without waking the object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
  }

  /** The log, fan-out and commit queue over this object's storage, and the modules that use them. */
  #open(): void {
    const ctx = this.ctx;
    // Counted in memory; the reporter (below) takes the counts to the Directory every few seconds.
    const metrics = this.env.DOVETAIL_METRICS === "off" ? undefined : new TopicMetrics({ changed: () => this.#reporter.soon() });
    const log = new TopicLog(ctx.storage.sql, (fn) => ctx.storage.transactionSync(fn), { topic: "", retention: this.#settings.retention });
    const fanout = new Fanout(log, ctx.getWebSockets(), { pageMessages: PAGE_MESSAGES, pageBytes: PAGE_BYTES, observer: metrics });
    const commits = new CommitQueue(
      log,
      (batch) => {
        for (const m of this.#modules) m.onCommit?.(batch);
        void this.#alarms.reschedule();
      },
      {
        flushDelayMs: this.#settings.flushDelayMs,
        maxPendingMessages: MAX_PENDING_MESSAGES,
        durable: () => ctx.storage.sync(),
        extraLingerMs: () => Math.min(MAX_SUBSCRIBER_LINGER_MS, fanout.subscriberCount * LINGER_PER_SUBSCRIBER_MS),
        observer: metrics,
        durability: () => log.durability,
        deliverEarly: (batch) => fanout.deliver(batch),
        lostEarly: (error) => fanout.abandonAhead(error),
      },
    );
    const sockets = () => fanout.sockets();
    this.#log = log;
    this.#fanout = fanout;
    this.#commits = commits;
    this.#policy = new ConnectionPolicy({
      attachment: (ws) => fanout.attachment(ws),
      persist: (ws) => fanout.persist(ws),
      sockets,
      taggedSockets: (tag) => ctx.getWebSockets(tag),
      forget: (ws) => this.#forget(ws),
      keys: () => this.env.KEYS.get(this.env.KEYS.idFromName(KEYS_OBJECT_NAME)),
      rateLimited: (reason) => metrics?.rateLimited(reason),
    });
    this.#retention = new RetentionModule(log, () => ctx.storage.sync());
    this.#streams = new StreamsModule({
      log,
      commits,
      sql: ctx.storage.sql,
      taggedSockets: (tag) => ctx.getWebSockets(tag),
      acceptTagged: (ws, tag) => ctx.acceptWebSocket(ws, [tag]),
      pageMessages: PAGE_MESSAGES,
      pageBytes: PAGE_BYTES,
      sync: () => ctx.storage.sync(),
    });
    this.#reporter = new DirectoryReporter(log, {
      topic: () => this.#address().topic,
      directory: () => this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(directoryObjectName(this.#address().tenant))),
      subscribers: () => fanout.subscriberCount,
      metrics,
      gauges: () => {
        let connections = 0;
        for (const _ of fanout.sockets()) connections++;
        return { connections, groups: this.#groups.infos().map((g) => ({ group: g.group, lag: g.lag, pending: g.pendingCount })) };
      },
      analytics: () => this.env.DOVETAIL_ANALYTICS,
      tenant: () => this.#address().tenant,
    });
    this.#groups = new GroupsModule({
      log,
      sql: ctx.storage.sql,
      topic: () => this.#address().topic,
      sockets,
      attachment: (ws) => fanout.attachment(ws),
      persist: (ws) => fanout.persist(ws),
      beforeWrite: () => this.#beforeWrite(),
      publishTo: (topic, messages, producer) => this.#topicStub(topic).publish(topic, messages, producer),
      readFrom: (topic, from, limit) => this.#topicStub(topic).read(topic, from, limit),
      reschedule: () => void this.#alarms.reschedule(),
      observer: metrics,
    });
    this.#subLinks = new SubscriptionLinks({
      sql: ctx.storage.sql,
      log,
      topic: () => this.#address().topic,
      watchers: (topic) => this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName(directoryObjectName(this.#address().tenant))).dsWatchers(topic),
      notify: (sub, topic, tail, from) =>
        this.env.DS_SUBSCRIPTION.get(this.env.DS_SUBSCRIPTION.idFromName(subscriptionObjectName(this.#address().tenant, sub))).streamMoved(topic, tail, from),
      deleted: (sub, topic) =>
        this.env.DS_SUBSCRIPTION.get(this.env.DS_SUBSCRIPTION.idFromName(subscriptionObjectName(this.#address().tenant, sub))).streamDeleted(topic),
    });
    this.#requests = new RequestsModule({
      sockets,
      attachment: (ws) => fanout.attachment(ws),
      persist: (ws) => fanout.persist(ws),
      maxDataBytes: () => this.#settings.limits.maxMessageBytes,
      publish: (messages) => this.#publish(messages),
    });
    // Order matters twice: commits reach subscribers first; a write is refused by a closed
    // stream before a new topic is listed for it.
    this.#modules = [
      fanout,
      this.#groups,
      this.#policy,
      new CredentialExpiry({ sockets, closeExpired: (ws) => this.#policy.closeCredentialSocket(ws, "the credential this socket was opened with has expired") }),
      this.#retention,
      this.#streams,
      ...(metrics ? [metrics] : []), // before the reporter: a report carries the commit that caused it
      this.#reporter,
      this.#subLinks,
      this.#requests,
    ];
    this.#frameModules = new Map();
    for (const m of this.#modules) for (const type of m.frameTypes ?? []) this.#frameModules.set(type, m);
  }

  /** Another topic of this tenant (dead-letter topics). */
  #topicStub(topic: string) {
    return this.env.TOPIC.get(this.env.TOPIC.idFromName(topicObjectName(this.#address().tenant, topic)));
  }

  /** Tenant and topic, from this object's name (`tenant:topic`, protocol/topic-address.ts). */
  #address() {
    const address = parseTopicObjectName(this.ctx.id.name);
    if (!address) throw new DovetailError("internal", `topic object without a topic name (${String(this.ctx.id.name)})`);
    return address;
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket

  /** The gateway's upgrade requests: a client socket with its grant, or a Durable Streams waiter. */
  override async fetch(request: Request): Promise<Response> {
    const upgrade = readTopicUpgrade(request);
    if (!upgrade) return new Response("not an upgrade request of the gateway", { status: 400 });
    this.#log.nameTopic(upgrade.topic);
    if (upgrade.kind === "stream-wait") return this.#streams.acceptWaiter(upgrade.after);
    const { topic, hibernate: hibernatable, grant, acks } = upgrade;
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // An API key's socket is registered with Keys first, so revoking the key finds it; a key
    // revoked since the gateway admitted the upgrade is refused here (issue 18).
    const sid = await this.#policy.register(grant, topic);
    if (sid === false) return refusedSocket(pair, "the credential this socket was opened with was revoked");
    if (hibernatable) {
      // Revocable credentials tag the socket so revocation finds it after a wake.
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
    const attachment = this.#fanout.add(server, hibernatable, { grant, ...(sid ? { sid } : {}), ...(acks === "batch" ? { acks } : {}) });
    for (const m of this.#modules) m.onSocketOpened?.(server, attachment);
    void this.#alarms.reschedule();
    server.send(
      encodeServerFrame({
        type: "welcome",
        version: PROTOCOL_VERSION,
        topic,
        head: this.#log.head,
        earliest: this.#log.earliest,
        limits: this.#settings.limits,
        durability: this.#log.durability,
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
    if (!this.#policy.isOpen(ws)) return;
    // Parsed before the rate check so that a refusal names the frame it refuses (issue 18):
    // every frame with an id gets exactly one answer with that id.
    const parsed = parseClientFrame(raw);
    const id = parsed.ok ? ("id" in parsed.frame ? parsed.frame.id : undefined) : parsed.id;
    if (!this.#policy.admit(ws, raw, id)) return;
    if (!parsed.ok) {
      ws.send(encodeErrorFrame(parsed.error, parsed.id));
      return;
    }
    try {
      this.#onFrame(ws, parsed.frame);
    } catch (error) {
      ws.send(encodeErrorFrame(asDovetailError(error, "topic"), id));
    }
  }

  #onFrame(ws: WebSocket, frame: ClientFrame): void {
    switch (frame.type) {
      case "publish": {
        const id = frame.id;
        this.#policy.checkPublish(this.#policy.grantOf(ws), frame.messages.length);
        // Not awaited: returning lets the next frame in, so it can join the same commit.
        const batched = this.#fanout.attachment(ws).acks === "batch";
        this.#publish(frame.messages, frame.producer).then(
          (r) => {
            const ack = { id, offset: r.offset, count: r.count, ...(r.duplicate ? { duplicate: true } : {}) };
            if (batched) this.#queueAck(ws, ack);
            else ws.send(encodeServerFrame({ type: "ack", ...ack }));
          },
          (e: unknown) => ws.send(encodeErrorFrame(asDovetailError(e, "topic"), id)),
        );
        return;
      }
      case "subscribe": {
        if (!this.#policy.grantOf(ws).sub) throw new DovetailError("forbidden", "this credential may not subscribe to this topic");
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
      default: {
        const module = this.#frameModules.get(frame.type);
        if (!module?.onFrame) throw new DovetailError("unknown_type", `no module answers ${frame.type} frames`);
        const id = "id" in frame ? frame.id : undefined;
        const done = module.onFrame(ws, this.#policy.grantOf(ws), frame);
        if (done) done.catch((e: unknown) => ws.send(encodeErrorFrame(asDovetailError(e, "topic"), id)));
      }
    }
  }

  /**
   * Answer a publish of an `?acks=batch` socket: every publish of the socket that one commit made
   * durable goes out in one `acks` frame. The commit resolves all its publishes in one turn, so a
   * microtask queued by the first answer runs after the others were added.
   */
  #queueAck(ws: WebSocket, ack: AckEntry): void {
    const waiting = this.#acksWaiting.get(ws);
    if (waiting) {
      waiting.push(ack);
      return;
    }
    this.#acksWaiting.set(ws, [ack]);
    queueMicrotask(() => {
      const acks = this.#acksWaiting.get(ws)!;
      this.#acksWaiting.delete(ws);
      try {
        ws.send(acks.length === 1 ? encodeServerFrame({ type: "ack", ...acks[0]! }) : encodeAcksFrame(acks));
      } catch {
        // The socket closed meanwhile; its close handler forgets it.
      }
    });
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

  /** A socket is gone: stop serving it, and tell every module (once per socket). */
  #forget(ws: WebSocket): void {
    const attachment = this.#fanout.remove(ws);
    if (attachment) for (const m of this.#modules) m.onSocketGone?.(ws, attachment);
  }

  // -------------------------------------------------------------------------------------------
  // RPC (called by the gateway)

  /**
   * Append messages (already validated by the gateway); resolves once they are durable.
   * `publisher` (credential id and limits) applies the per-topic publish limit to HTTP publishes.
   */
  async publish(
    topic: string,
    messages: PublishMessage[],
    producer?: ProducerStamp,
    publisher?: Pick<SocketGrant, "cred" | "rate">,
  ): Promise<RpcResult<PublishResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => {
      if (publisher) this.#policy.checkPublish({ ...publisher, pub: true }, messages.length);
      return this.#publish(messages, producer);
    });
  }

  /** Read up to `limit` messages from `from`. */
  async read(topic: string, from: SubscribeFrom, limit: number): Promise<RpcResult<ReadResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => {
      const start = this.#log.resolveFrom(from);
      const rows = this.#log.read(start, Math.min(limit, PAGE_MESSAGES), PAGE_BYTES);
      const parts = rows.map((r) => deliveredMessageJson(r.offset, r.time, r.body));
      // From the last row: a memory topic skips what it no longer holds.
      const next = rows.length > 0 ? rows[rows.length - 1]!.offset + 1 : start;
      return { messagesJson: `[${parts.join(",")}]`, count: rows.length, next, head: this.#log.head, earliest: this.#log.earliest };
    });
  }

  async info(topic: string): Promise<TopicInfo> {
    this.#log.nameTopic(topic);
    return { ...this.#log.info(), subscribers: this.#fanout.subscriberCount };
  }

  /**
   * Change the topic's settings: retention (applied now; an age limit is then kept by the alarm)
   * and durability (protocol/durability.ts; `memory` only before the first message, else
   * `conflict`). Messages waiting for the group commit are committed under the old level first.
   */
  async configure(topic: string, settings: TopicSettingsChange): Promise<RpcResult<TopicInfo>> {
    this.#log.nameTopic(topic);
    return rpcResult(async () => {
      await this.#beforeWrite(); // a setting is a write: it creates the topic
      if (settings.durability !== undefined) {
        this.#commits.flush();
        this.#log.setDurability(settings.durability);
      }
      if (settings.retention) await this.#retention.configure(settings.retention, Date.now());
      await this.#alarms.reschedule();
      return this.info(topic);
    });
  }

  /**
   * Close every socket opened with credential `credentialId` (a revoked API key): an
   * `unauthorized` error frame, then close code 4401. Returns how many were closed.
   */
  async closeCredential(credentialId: string): Promise<number> {
    return this.#policy.closeCredential(credentialId);
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
      this.#policy.markClosed(ws);
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
    for (const m of this.#modules) await m.onDelete?.();
    await this.ctx.storage.deleteAlarm();
    this.#alarms.fired();
    await this.ctx.storage.deleteAll();
    this.#open(); // fresh in-memory state over the now empty storage
    return { closedSockets };
  }

  /** A consumer-group operation (HTTP pull and admin routes; objects/groups/groups-module.ts). */
  async groups<C extends GroupCall>(topic: string, call: C): Promise<RpcResult<GroupReplies[C["op"]]>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => this.#groups.call(call));
  }

  /** A request over HTTP: waits for the reply (objects/requests/requests-module.ts). */
  async request(topic: string, data: unknown, timeoutMs: number, durable: boolean): Promise<RpcResult<RequestReply>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => this.#requests.request(data, timeoutMs, durable));
  }

  // -------------------------------------------------------------------------------------------
  // Alarm: each module does what is due, then the alarm is set for the earliest next deadline.

  override async alarm(): Promise<void> {
    this.#alarms.fired();
    const now = Date.now();
    this.#commits.flush();
    for (const m of this.#modules) await m.onAlarm?.(now);
    await this.#alarms.reschedule();
  }

  // -------------------------------------------------------------------------------------------

  /** Every module may refuse or delay a write (a closed stream; a new topic not listed yet). */
  #beforeWrite(): Promise<void> | undefined {
    let wait: Promise<void> | undefined;
    for (const m of this.#modules) {
      const w = m.beforeWrite?.();
      if (w) wait = wait ? wait.then(() => w) : w;
    }
    return wait;
  }

  #publish(messages: PublishMessage[], producer?: ProducerStamp): Promise<PublishResult> {
    try {
      const prepared = this.#prepare(messages);
      const wait = this.#beforeWrite();
      if (wait) return wait.then(() => this.#commits.submit(prepared, producer));
      return this.#commits.submit(prepared, producer);
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

  // ---- Durable Streams (HTTP): the protocol's operations, done by the streams module ----
  // They answer data and refuse as every RPC method does (objects/rpc-result.ts); the gateway
  // writes the HTTP (workers/streams-reply.ts). A read answers the reply it composed.

  async dsCreate(topic: string, req: DsCreateRequest): Promise<RpcResult<DsCreateResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(async () => {
      await this.#reporter.beforeWrite(); // a create is a write (the stream module's closed check does not apply: a create may follow a delete)
      return this.#streams.service.create(req, Date.now());
    });
  }

  async dsAppend(topic: string, req: DsAppendRequest): Promise<RpcResult<DsAppendResult>> {
    this.#log.nameTopic(topic);
    return rpcResult(() => this.#streams.service.append(req, Date.now()));
  }

  async dsRead(topic: string, req: DsReadRequest): Promise<DsReadReply> {
    this.#log.nameTopic(topic);
    return this.#streams.service.read(req, Date.now());
  }

  async dsHead(_topic: string): Promise<RpcResult<DsStreamInfo>> {
    return rpcResult(() => this.#streams.service.head(Date.now()));
  }

  async dsDelete(_topic: string): Promise<RpcResult<DsDeleteResult>> {
    return rpcResult(() => this.#streams.delete(Date.now()));
  }

  async dsForkSource(_topic: string, offset: number | null, subOffset: number): Promise<RpcResult<DsForkSource>> {
    return rpcResult(() => this.#streams.service.forkSource(offset, subOffset, Date.now()));
  }

  /** A Durable Streams subscription links (or unlinks) this stream; answers its tail (objects/subscription-links.ts). */
  async dsSubscriptionLink(topic: string, sub: string, link: boolean): Promise<{ exists: boolean; tail: number }> {
    this.#log.nameTopic(topic);
    return this.#subLinks.link(sub, link);
  }

  /** A fork of this stream was created (+1) or deleted (-1); returns this stream's source to release in turn. */
  async dsForkRef(_topic: string, delta: 1 | -1): Promise<string | null> {
    return this.#streams.forkRef(delta);
  }
}
