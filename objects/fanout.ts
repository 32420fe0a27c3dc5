/**
 * Fanout: delivers a topic's messages to its WebSocket subscribers, within the credit each one
 * granted (docs/decisions/005-flow-control.md).
 *
 * - A subscriber that is caught up gets each commit straight from memory; every caught-up
 *   subscriber with enough credit is sent the very same frame text.
 * - A subscriber that is behind (it started in the past, or ran out of credit and came back)
 *   reads from SQLite, one page per turn, round-robin, so catch-up never starves publishers.
 * - A subscriber without credit costs nothing: nothing is queued for it in memory.
 *
 * Subscription state lives in each socket's attachment, so it survives hibernation; the maps
 * here are a cache rebuilt from `getWebSockets()` when the object wakes.
 */
import { DovetailError } from "../protocol/errors.ts";
import { encodeErrorFrame, encodeMessagesFrame, MAX_CREDIT } from "../protocol/frames.ts";
import type { CommittedBatch } from "./commit-queue.ts";
import { deliveredMessageJson } from "../protocol/stored-message.ts";
import type { TopicLog } from "./log.ts";
import type { SocketGrant } from "../protocol/grant.ts";
import type { FrameLimitState } from "./frame-limiter.ts";
import type { ConsumerAttachment } from "./groups/groups-module.ts";
import type { DeliveryObserver } from "./topic-metrics.ts";

/** What each socket carries across hibernation. Keep it small: it is written on every delivery. */
export interface SocketAttachment {
  /** Attachment format version. */
  v: 1;
  sub?: Subscription;
  /** Who opened the socket and what it may do (set by the gateway; protocol/grant.ts). */
  grant?: SocketGrant;
  /** Per-connection frame and byte buckets (objects/frame-limiter.ts). */
  limit?: FrameLimitState;
  /** Id under which the socket is registered with Keys (API-key sockets only), for revocation. */
  sid?: string;
  /** The consumer-group member this socket is (objects/groups/groups-module.ts). */
  consumer?: ConsumerAttachment;
  /** Present when the socket was opened with `?acks=batch`: its publishes are answered with `acks` frames. */
  acks?: "batch";
}

export interface Subscription {
  /** Correlation id of the `subscribe` frame. */
  id: number;
  /** Next offset to deliver. */
  next: number;
  /** Messages this subscriber may still be sent. */
  credit: number;
}

export interface FanoutOptions {
  /** Most messages per catch-up page (and per delivered frame). */
  pageMessages: number;
  /** Most payload bytes per catch-up page. */
  pageBytes: number;
  /** Told of deliveries, pauses and failures (objects/topic-metrics.ts). */
  observer?: Pick<DeliveryObserver, "delivered" | "paused" | "failed">;
}

export class Fanout {
  readonly #log: TopicLog;
  readonly #options: FanoutOptions;
  readonly #sockets = new Map<WebSocket, SocketAttachment>();
  readonly #behind = new Set<WebSocket>();
  /** Cached {@link subscriberCount}; null when a subscription may have changed. */
  #subscriberCount: number | null = null;
  /** Sockets accepted with the hibernation API; only these carry their state in attachments. */
  readonly #hibernatable = new WeakSet<WebSocket>();
  #pumpTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(log: TopicLog, sockets: WebSocket[], options: FanoutOptions) {
    this.#log = log;
    this.#options = options;
    for (const ws of sockets) {
      const attachment = (ws.deserializeAttachment() as SocketAttachment | null) ?? { v: 1 };
      this.#sockets.set(ws, attachment);
      this.#hibernatable.add(ws);
      if (attachment.sub && attachment.sub.credit > 0 && attachment.sub.next < log.head) this.#markBehind(ws);
    }
  }

  /** Sockets with a subscription. Read on every publish (group-commit linger), so cached. */
  get subscriberCount(): number {
    if (this.#subscriberCount === null) {
      let n = 0;
      for (const a of this.#sockets.values()) if (a.sub) n++;
      this.#subscriberCount = n;
    }
    return this.#subscriberCount;
  }

  /**
   * Track a new socket. `hibernatable` sockets keep their state in attachments; the others
   * (accepted with `accept()`, which keep the object awake) only in memory.
   */
  add(ws: WebSocket, hibernatable: boolean, init: Omit<SocketAttachment, "v" | "sub"> = {}): SocketAttachment {
    const attachment: SocketAttachment = { v: 1, ...init };
    if (hibernatable) this.#hibernatable.add(ws);
    this.#sockets.set(ws, attachment);
    this.#persist(ws, attachment);
    return attachment;
  }

  /** The live attachment of a socket (security hooks read and update `grant` and `limit`). */
  attachment(ws: WebSocket): SocketAttachment {
    return this.#attachment(ws);
  }

  /** Write a socket's attachment after a change made through {@link attachment}. */
  persist(ws: WebSocket): void {
    this.#persist(ws, this.#attachment(ws));
  }

  /** Every socket this fan-out knows, with its attachment. */
  sockets(): IterableIterator<[WebSocket, SocketAttachment]> {
    return this.#sockets.entries();
  }

  #persist(ws: WebSocket, attachment: SocketAttachment): void {
    if (this.#hibernatable.has(ws)) ws.serializeAttachment(attachment);
  }

  /** Forget a socket; returns its attachment, or undefined when it was not (or no longer) known. */
  remove(ws: WebSocket): SocketAttachment | undefined {
    const attachment = this.#sockets.get(ws);
    this.#sockets.delete(ws);
    this.#subscriberCount = null;
    this.#behind.delete(ws);
    return attachment;
  }

  subscription(ws: WebSocket): Subscription | undefined {
    return this.#sockets.get(ws)?.sub;
  }

  /** Start a subscription at `next` (already resolved and checked). */
  subscribe(ws: WebSocket, id: number, next: number, credit: number): void {
    const attachment = this.#attachment(ws);
    attachment.sub = { id, next, credit: Math.min(credit, MAX_CREDIT) };
    this.#subscriberCount = null;
    this.#persist(ws, attachment);
    if (next < this.#log.head && credit > 0) this.#markBehind(ws);
  }

  unsubscribe(ws: WebSocket): void {
    const attachment = this.#attachment(ws);
    delete attachment.sub;
    this.#subscriberCount = null;
    this.#persist(ws, attachment);
    this.#behind.delete(ws);
  }

  /** Grant more credit; a paused subscriber resumes from the log. */
  grant(ws: WebSocket, messages: number): void {
    const attachment = this.#attachment(ws);
    const sub = attachment.sub;
    if (!sub) return;
    sub.credit = Math.min(MAX_CREDIT, sub.credit + messages);
    this.#persist(ws, attachment);
    if (sub.next < this.#log.head) this.#markBehind(ws);
  }

  /** After a commit: deliver it, unless it was delivered before the write (`async` durability). */
  onCommit(batch: CommittedBatch): void {
    if (!batch.deliveredEarly) this.deliver(batch);
  }

  /** Deliver fresh messages to every caught-up subscriber; the others will read them from the log. */
  deliver(batch: CommittedBatch): void {
    const count = batch.bodies.length;
    let json: string[] | null = null;
    let shared: string | null = null;
    let partial: Map<number, string> | undefined;
    const observer = this.#options.observer;
    let now = 0;
    for (const [ws, attachment] of this.#sockets) {
      const sub = attachment.sub;
      if (!sub || sub.credit === 0 || this.#behind.has(ws)) continue;
      if (sub.next !== batch.first || count > this.#options.pageMessages) {
        this.#markBehind(ws);
        continue;
      }
      json ??= batch.bodies.map((body, i) => deliveredMessageJson(batch.first + i, batch.time, body));
      const n = Math.min(sub.credit, count);
      // Subscribers granted the same part of the commit share one frame text.
      let frame: string | null | undefined = n === count ? shared : partial?.get(n);
      if (frame === undefined || frame === null) {
        frame = encodeMessagesFrame(n === count ? json : json.slice(0, n));
        if (n === count) shared = frame;
        else (partial ??= new Map()).set(n, frame);
      }
      if (!this.#send(ws, frame)) continue;
      sub.next += n;
      sub.credit -= n;
      this.#persist(ws, attachment);
      if (observer) {
        now ||= Date.now();
        observer.delivered(n, now - batch.time);
        if (n < count) observer.paused();
      }
    }
  }

  /**
   * `async` durability: a batch delivered before its write was not stored, so its offsets will
   * be given again. Every subscription that got past the log's head ends with `error` (the
   * subscriber may subscribe again from the head it is told).
   */
  abandonAhead(cause: DovetailError): void {
    const head = this.#log.head;
    const error = new DovetailError(cause.code, `messages from offset ${head} were delivered but not stored: ${cause.message}`, { head });
    for (const [ws, attachment] of this.#sockets) {
      const sub = attachment.sub;
      if (!sub || sub.next <= head) continue;
      this.#send(ws, encodeErrorFrame(error, sub.id));
      this.unsubscribe(ws);
    }
  }

  #attachment(ws: WebSocket): SocketAttachment {
    let attachment = this.#sockets.get(ws);
    if (!attachment) {
      attachment = { v: 1 };
      this.#sockets.set(ws, attachment);
    }
    return attachment;
  }

  #markBehind(ws: WebSocket): void {
    this.#behind.add(ws);
    this.#pumpTimer ??= setTimeout(() => this.#pump(), 0);
  }

  /**
   * One catch-up page for each subscriber that is behind, then yield to other events. Subscribers
   * at the same offset with the same room (many subscribers catching up together after a burst or
   * a pause) share one read and one frame text: the page is read and encoded once per pass.
   */
  #pump(): void {
    this.#pumpTimer = null;
    const pages = new Map<string, { frame: string; count: number; next: number; time: number } | null>();
    for (const ws of [...this.#behind]) {
      const attachment = this.#sockets.get(ws);
      const sub = attachment?.sub;
      if (!attachment || !sub || sub.credit === 0 || sub.next >= this.#log.head) {
        this.#behind.delete(ws);
        continue;
      }
      const limit = Math.min(sub.credit, this.#options.pageMessages);
      const key = `${sub.next}:${limit}`;
      let page = pages.get(key);
      try {
        if (page === undefined) {
          const rows = this.#log.read(sub.next, limit, this.#options.pageBytes);
          page =
            rows.length === 0
              ? null
              : {
                  frame: encodeMessagesFrame(rows.map((r) => deliveredMessageJson(r.offset, r.time, r.body))),
                  count: rows.length,
                  next: rows[rows.length - 1]!.offset + 1,
                  time: rows[0]!.time,
                };
          pages.set(key, page);
        }
      } catch (error) {
        // Retention removed what this subscriber had not read yet: tell it where the log starts
        // now and end the subscription; it may subscribe again from `earliest`.
        const failure = error instanceof DovetailError ? error : new DovetailError("internal", "catch-up read failed", {}, { cause: error });
        this.#options.observer?.failed("trimmed");
        this.#send(ws, encodeErrorFrame(failure, sub.id));
        this.unsubscribe(ws);
        continue;
      }
      if (page === null) {
        this.#behind.delete(ws);
        continue;
      }
      if (!this.#send(ws, page.frame)) continue;
      // From the page's last row: a memory topic skips what it no longer holds (objects/memory-ring.ts).
      sub.next = page.next;
      sub.credit -= page.count;
      this.#persist(ws, attachment);
      this.#options.observer?.delivered(page.count, Date.now() - page.time);
      if (sub.credit === 0 && sub.next < this.#log.head) this.#options.observer?.paused();
      if (sub.credit === 0 || sub.next >= this.#log.head) this.#behind.delete(ws);
    }
    if (this.#behind.size > 0) this.#pumpTimer = setTimeout(() => this.#pump(), 0);
  }

  /** Send, dropping the socket from fan-out if it is already gone. */
  #send(ws: WebSocket, frame: string): boolean {
    try {
      ws.send(frame);
      return true;
    } catch {
      this.#options.observer?.failed("socket_gone");
      this.remove(ws);
      return false;
    }
  }
}
