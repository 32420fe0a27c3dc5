/**
 * PatternSession: one pattern subscription (protocol/patterns.ts, decision 030). It follows every
 * topic the pattern matches and the credential may subscribe to, each through an {@link Upstream}
 * socket, and relays their messages to the one client socket with the topic's name, within the
 * credit the client grants.
 *
 * - Start: the Directory lists the matched topics and, in the same call, starts telling this
 *   subscription about topics created later ({@link add}); each topic starts at its resume cursor,
 *   else at its first message when it was created after the subscription started, else at `from`.
 *   `matching` goes out once every topic listed answered `subscribed` (or was refused, with
 *   `unmatched`), so whatever is published after it is delivered.
 * - Relay: a frame is passed on as the topic's own text with the topic's name added; one is split
 *   (re-encoded) only when the client's credit ends inside it. Topics waiting for credit are served
 *   round-robin, a frame each, so one busy topic does not starve the others.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { DEFAULT_CREDIT, MAX_CREDIT, PROTOCOL_VERSION, type SubscribeFrom } from "../../protocol/frames.ts";
import type { SocketGrant } from "../../protocol/grant.ts";
import type { PatternClientFrame } from "../../protocol/pattern-schemas.ts";
import { patternMessagesFrame, type MatchingFrame, type PatternWelcomeFrame, type UnmatchedFrame } from "../../protocol/patterns.ts";
import { topicMatches } from "../../protocol/scopes.ts";
import { Upstream, type UpstreamFrame, type UpstreamOwner } from "./upstream.ts";

/** Sockets to matched topics opened at once when a subscription starts. */
const OPEN_CONCURRENCY = 16;

/** What a session needs from its object. */
export interface PatternSessionHost {
  /** Send a frame to the client; false when its socket is gone. */
  send(text: string): boolean;
  /** The Directory's answer: the matched topics now (created at), and from now on calls to {@link PatternSession.add}. */
  watch(limit: number): Promise<{ topics: { name: string; createdAt: number }[]; more: boolean }>;
  /** Open a socket to a topic's object. */
  open(topic: string, request: Request): Promise<Response>;
  /** When the topic was created, or null when it does not exist (it may exist again after a delete). */
  createdAt(topic: string): Promise<number | null>;
  /** End the client's socket with this close code, after an error frame. */
  end(error: DovetailError, code: number): void;
}

export class PatternSession implements UpstreamOwner {
  readonly pattern: string;
  readonly #scopes: readonly string[];
  readonly #grant: SocketGrant;
  readonly #host: PatternSessionHost;
  readonly #upstreams = new Map<string, Upstream>();
  /** Topics with frames waiting for credit, in the order they will be served. */
  readonly #waiting: Upstream[] = [];
  /** Upstreams whose `subscribed` (or refusal) `matching` still waits for. */
  readonly #onReady = new Map<Upstream, () => void>();
  #credit = 0;
  #id = 0;
  #from: SubscribeFrom = "latest";
  #startedAt = 0;
  #cursors: Record<string, number> = {};
  #started = false;
  #closed = false;

  /** Most topics it follows (`too_many_topics` beyond). */
  readonly #maxTopics: number;

  constructor(pattern: string, scopes: readonly string[], grant: SocketGrant, maxTopics: number, host: PatternSessionHost) {
    this.pattern = pattern;
    this.#maxTopics = maxTopics;
    this.#scopes = scopes;
    this.#grant = grant;
    this.#host = host;
  }

  welcome(): string {
    const frame: PatternWelcomeFrame = { type: "welcome", version: PROTOCOL_VERSION, pattern: this.pattern };
    return JSON.stringify(frame);
  }

  /** Is this session following (or about to follow) new topics? */
  get live(): boolean {
    return this.#started && !this.#closed;
  }

  /** May the credential subscribe to `topic`? */
  #allowed(topic: string): boolean {
    return this.#scopes.some((p) => topicMatches(p, topic));
  }

  /** A client frame (already parsed). Throws a DovetailError to refuse it. */
  async onFrame(frame: PatternClientFrame | { type: "credit"; messages: number } | { type: "unsubscribe"; id: number }): Promise<void> {
    switch (frame.type) {
      case "subscribe":
        if (this.#started) throw new DovetailError("already_subscribed", "this socket already has a pattern subscription; open another socket");
        this.#started = true;
        this.#id = frame.id;
        this.#credit = frame.credit ?? DEFAULT_CREDIT;
        this.#cursors = frame.cursors ?? {};
        this.#startedAt = frame.startedAt ?? Date.now();
        // Resuming without a cursor means "as it would have started then": stored at or after the start.
        this.#from = frame.startedAt !== undefined && (frame.from ?? "latest") === "latest" ? { time: frame.startedAt } : (frame.from ?? "latest");
        try {
          await this.#start();
        } catch (error) {
          this.close(); // a subscription that could not start ends (the object closes the socket)
          throw error;
        }
        return;
      case "credit":
        if (!this.#started) throw new DovetailError("not_subscribed", "credit without a subscription");
        this.#credit = Math.min(MAX_CREDIT, this.#credit + frame.messages);
        this.#pump();
        return;
      case "unsubscribe":
        if (!this.#started) throw new DovetailError("not_subscribed", "nothing to unsubscribe");
        this.close();
        this.#host.send(JSON.stringify({ type: "unsubscribed", id: frame.id }));
        return;
    }
  }

  async #start(): Promise<void> {
    const { topics, more } = await this.#host.watch(this.#maxTopics);
    if (this.#closed) return;
    if (more) {
      throw new DovetailError("too_many_topics", `${this.pattern} matches more than ${this.#maxTopics} topics; subscribe to a narrower pattern`);
    }
    const opening: Upstream[] = [];
    for (const { name, createdAt } of topics) {
      const upstream = this.#follow(name, createdAt);
      if (upstream) opening.push(upstream);
    }
    // Open them a few at a time; `matching` waits for every `subscribed` (or refusal).
    const ready = opening.map((u) => new Promise<void>((resolve) => this.#onReady.set(u, resolve)));
    let k = 0;
    const worker = async () => {
      while (k < opening.length && !this.#closed) await opening[k++]!.connect();
    };
    await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, opening.length) }, worker));
    await Promise.all(ready);
    if (this.#closed) return;
    const matching: MatchingFrame = { type: "matching", id: this.#id, pattern: this.pattern, startedAt: this.#startedAt, topics: this.#upstreams.size };
    this.#host.send(JSON.stringify(matching));
    this.#pump();
  }

  /**
   * Start following `topic` (created at `createdAt`), unless it is followed already or not
   * allowed. `created`: it was created after the subscription watched (a resume cursor for it
   * belongs to an older topic of that name, deleted since).
   */
  #follow(topic: string, createdAt: number, created = false): Upstream | null {
    if (this.#upstreams.has(topic) || !this.#allowed(topic)) return null;
    if (this.#upstreams.size >= this.#maxTopics) {
      this.#unmatched(topic, new DovetailError("too_many_topics", `this subscription already follows ${this.#maxTopics} topics`));
      return null;
    }
    const cursor = created ? undefined : this.#cursors[topic];
    const from: SubscribeFrom = cursor !== undefined ? cursor : createdAt >= this.#startedAt ? "earliest" : this.#from;
    const upstream = new Upstream(topic, from, this.#grant, this);
    this.#upstreams.set(topic, upstream);
    return upstream;
  }

  /** The Directory says `topic` was created (at `at`): follow it from its first message. */
  add(topic: string, at: number): void {
    if (!this.live) return;
    const upstream = this.#follow(topic, Math.max(at, this.#startedAt), true);
    if (upstream) void upstream.connect();
  }

  /** End: close every upstream. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const u of this.#upstreams.values()) u.close();
    this.#upstreams.clear();
    this.#waiting.length = 0;
    for (const resolve of this.#onReady.values()) resolve();
    this.#onReady.clear();
  }

  // -- UpstreamOwner ----------------------------------------------------------------------------

  open(topic: string, request: Request): Promise<Response> {
    return this.#host.open(topic, request);
  }

  onSubscribed(upstream: Upstream): void {
    this.#settle(upstream);
  }

  onMessages(upstream: Upstream, frame: UpstreamFrame): void {
    if (this.#closed) return;
    upstream.queue.push(frame);
    if (upstream.queue.length === 1) this.#waiting.push(upstream);
    // Before `matching`, messages wait: the client learns of the subscription first.
    if (this.#onReady.size === 0) this.#pump();
  }

  onEnded(upstream: Upstream, error: DovetailError): void {
    if (this.#upstreams.get(upstream.topic) !== upstream) return;
    this.#upstreams.delete(upstream.topic);
    const i = this.#waiting.indexOf(upstream);
    if (i >= 0) this.#waiting.splice(i, 1);
    this.#settle(upstream);
    this.#unmatched(upstream.topic, error);
    // Deleted: it may exist again already (created again before its old socket closed).
    if (error.code === "topic_deleted" && this.live) {
      void this.#host.createdAt(upstream.topic).then((createdAt) => {
        if (createdAt !== null) this.add(upstream.topic, createdAt);
      });
    }
  }

  onCredentialEnded(error: DovetailError): void {
    this.close();
    this.#host.end(error, 4401);
  }

  #settle(upstream: Upstream): void {
    const resolve = this.#onReady.get(upstream);
    if (!resolve) return;
    this.#onReady.delete(upstream);
    resolve();
  }

  #unmatched(topic: string, error: DovetailError): void {
    const frame: UnmatchedFrame = { type: "unmatched", topic, code: error.code, message: error.message };
    this.#host.send(JSON.stringify(frame));
  }

  /** Relay waiting frames while the client has credit, one frame per topic in turn. */
  #pump(): void {
    while (this.#credit > 0 && this.#waiting.length > 0 && !this.#closed) {
      const upstream = this.#waiting.shift()!;
      const frame = upstream.queue[0]!;
      const n = frame.messages.length;
      let sent: number;
      if (n <= this.#credit && frame.text !== "") {
        sent = n;
        upstream.queue.shift();
        if (!this.#host.send(patternMessagesFrame(upstream.topic, frame.text, upstream.skips))) return;
      } else {
        // The credit ends inside this frame (or it was trimmed): send what fits, keep the rest.
        sent = Math.min(n, this.#credit);
        const part = frame.messages.slice(0, sent);
        if (sent === n) upstream.queue.shift();
        else {
          frame.messages = frame.messages.slice(sent);
          frame.text = "";
        }
        const text = `{"type":"messages","topic":${JSON.stringify(upstream.topic)},${upstream.skips ? '"skips":true,' : ""}"messages":[${part.map((m) => JSON.stringify(m)).join(",")}]}`;
        if (!this.#host.send(text)) return;
      }
      this.#credit -= sent;
      upstream.relayed(sent);
      if (upstream.queue.length > 0) this.#waiting.push(upstream);
    }
  }
}
