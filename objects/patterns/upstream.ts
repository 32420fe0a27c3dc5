/**
 * Upstream: a pattern subscription's socket to one matched topic (decision 030). The feed opens
 * it as the gateway opens a client's (protocol/topic-request.ts, with the subscriber's grant), so
 * the topic applies the same permissions, limits, revocation and expiry, and delivers with its
 * own fan-out: catch-up from SQLite, then live, within credit.
 *
 * - Credit: the topic may send at most {@link UPSTREAM_WINDOW} messages ahead of what the feed
 *   relayed to its client. Relaying gives credit back, so a slow client holds at most that many
 *   messages per topic in the feed's memory, and slows only its own subscription.
 * - Position: `next` is the offset after the last message received; a lost socket (the topic
 *   restarted or moved) is opened again and subscribes from `next`, so no message is skipped or
 *   received twice.
 * - Ends: the topic deleted (close 4004), or the subscribe refused (an offset past the end, a
 *   trimmed offset, forbidden): the owner is told once, with the error. A credential that ended
 *   (close 4401) ends the whole subscription.
 */
import { CLOSE_CODES, closeCodeError } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { parseServerFrame, type DeliveredMessage, type SubscribeFrom } from "../../protocol/frames.ts";
import type { SocketGrant } from "../../protocol/grant.ts";
import { topicUpgradeRequest } from "../../protocol/topic-request.ts";

/** Most messages a topic may send a pattern subscription ahead of what its client took. */
export const UPSTREAM_WINDOW = 64;
/** Credit goes back to the topic in steps of this many messages. */
const CREDIT_STEP = UPSTREAM_WINDOW / 4;
/** Reopening a lost socket waits this long, doubling up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 5_000;

/** A `messages` frame received from the topic and not yet relayed: its text, and its messages parsed. */
export interface UpstreamFrame {
  text: string;
  messages: DeliveredMessage[];
}

export interface UpstreamOwner {
  /** Open a socket to `topic`'s object (the upgrade {@link topicUpgradeRequest} builds). */
  open(topic: string, request: Request): Promise<Response>;
  /** The topic answered `subscribed`: messages published from now on will come. */
  onSubscribed(upstream: Upstream): void;
  /** A frame of consecutive new messages arrived (already checked against `next`). */
  onMessages(upstream: Upstream, frame: UpstreamFrame): void;
  /** This topic is no longer delivered (deleted, refused). Called once; the upstream is closed. */
  onEnded(upstream: Upstream, error: DovetailError): void;
  /** The credential ended (revoked, expired): the whole subscription must end. */
  onCredentialEnded(error: DovetailError): void;
}

/** Send `text` on `socket` if there is one and it is open; false otherwise (a close event follows). */
export function sendQuietly(socket: WebSocket | null, text: string): boolean {
  if (!socket) return false;
  try {
    socket.send(text);
    return true;
  } catch {
    return false;
  }
}

export class Upstream {
  readonly topic: string;
  readonly #grant: SocketGrant;
  readonly #owner: UpstreamOwner;
  /** Where to start before anything was received. */
  readonly #from: SubscribeFrom;
  /** Offset after the last message received; null before the first `subscribed`. */
  next: number | null = null;
  /** The topic's offsets may jump forward: a `memory` topic (its welcome says so). */
  skips = false;
  /** Frames received and not yet relayed, oldest first. */
  readonly queue: UpstreamFrame[] = [];
  #socket: WebSocket | null = null;
  /** Messages relayed whose credit has not gone back to the topic yet. */
  #owed = 0;
  #closed = false;
  #retryMs = FIRST_RETRY_MS;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** The error frame that explains the close that follows (a refused subscribe or socket). */
  #refusal: DovetailError | null = null;

  constructor(topic: string, from: SubscribeFrom, grant: SocketGrant, owner: UpstreamOwner) {
    this.topic = topic;
    this.#from = from;
    this.#grant = grant;
    this.#owner = owner;
  }

  /** Open the socket (and again after each loss, until {@link close}). */
  async connect(): Promise<void> {
    if (this.#closed) return;
    let socket: WebSocket | null;
    try {
      const grant: SocketGrant = { ...this.#grant, pub: false, sub: true, con: false };
      const response = await this.#owner.open(this.topic, topicUpgradeRequest({ kind: "socket", topic: this.topic, hibernate: true, grant }));
      socket = response.webSocket;
      if (!socket) throw new DovetailError("internal", `topic ${this.topic} answered the upgrade with ${response.status}`);
    } catch (error) {
      console.error(`pattern feed: could not open ${this.topic}`, error);
      this.#retry();
      return;
    }
    if (this.#closed) {
      socket.accept();
      socket.close(CLOSE_CODES.normal, "pattern subscription ended");
      return;
    }
    this.#socket = socket;
    socket.accept();
    socket.addEventListener("message", (e) => this.#onFrame(e.data as string | ArrayBuffer));
    socket.addEventListener("close", (e) => this.#onClose(socket, e.code));
    socket.addEventListener("error", () => this.#onClose(socket, 1006));
  }

  /** The client took `count` of this topic's messages: give the topic credit back, in steps. */
  relayed(count: number): void {
    this.#owed += count;
    if (this.#owed < CREDIT_STEP && this.queue.length > 0) return;
    if (this.#owed === 0) return;
    if (this.#send(`{"type":"credit","messages":${this.#owed}}`)) this.#owed = 0;
  }

  /** Stop: close the socket, retry nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const socket = this.#socket;
    this.#socket = null;
    try {
      socket?.close(CLOSE_CODES.normal, "pattern subscription ended");
    } catch {
      // already closed
    }
  }

  #send(text: string): boolean {
    return sendQuietly(this.#socket, text);
  }

  #onFrame(raw: string | ArrayBuffer): void {
    const parsed = parseServerFrame(raw);
    if (!parsed.ok) return;
    const frame = parsed.frame;
    switch (frame.type) {
      case "welcome": {
        // Each socket starts with a full window, minus what is still queued here.
        const queued = this.queue.reduce((n, f) => n + f.messages.length, 0);
        this.skips = "durability" in frame && frame.durability === "memory";
        this.#owed = 0;
        const from = this.next ?? this.#from;
        this.#send(JSON.stringify({ type: "subscribe", id: 1, from, credit: Math.max(0, UPSTREAM_WINDOW - queued) }));
        return;
      }
      case "subscribed":
        this.#retryMs = FIRST_RETRY_MS;
        if (this.next === null) {
          this.next = frame.next;
          this.#owner.onSubscribed(this);
        }
        return;
      case "messages": {
        if (this.next === null) return;
        const fresh = frame.messages.filter((m) => m.offset >= this.next!);
        if (fresh.length === 0) return;
        this.next = fresh[fresh.length - 1]!.offset + 1;
        this.#owner.onMessages(this, { text: fresh.length === frame.messages.length ? (raw as string) : "", messages: fresh });
        return;
      }
      case "error": {
        const error = DovetailError.fromWire(frame);
        if (error.code === "rate_limited") return;
        if (frame.id === 1)
          this.#end(error); // the subscribe was refused
        else this.#refusal = error; // a close follows
        return;
      }
      default:
        return;
    }
  }

  #onClose(socket: WebSocket, code: number): void {
    if (this.#socket !== socket) return;
    this.#socket = null;
    if (this.#closed) return;
    const final = closeCodeError(code);
    const error = this.#refusal ?? new DovetailError(final ?? "closed", `topic ${this.topic} closed the socket (${code})`);
    this.#refusal = null;
    if (code === CLOSE_CODES.credentialEnded) {
      this.close();
      this.#owner.onCredentialEnded(error);
    } else if (final !== null) this.#end(error);
    else this.#retry();
  }

  #end(error: DovetailError): void {
    if (this.#closed) return;
    this.close();
    this.#owner.onEnded(this, error);
  }

  #retry(): void {
    if (this.#closed || this.#retryTimer) return;
    const wait = this.#retryMs;
    this.#retryMs = Math.min(MAX_RETRY_MS, this.#retryMs * 2);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      void this.connect();
    }, wait);
  }
}
