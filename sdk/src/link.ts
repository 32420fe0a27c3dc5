/**
 * Link: one topic WebSocket that reconnects by itself. Its owner (a publish pipe or a
 * subscription) is told when the socket is ready (after the `welcome` frame), gets every other
 * frame, and is told when the socket is lost or the link gives up. The owner decides what to
 * resend; the link only knows sockets, backoff and keep-alive.
 */
import { backoffDelayMs, type ReconnectOptions } from "./backoff.ts";
import { closeCodeError } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { parseServerFrame, PING_TEXT, type ServerFrame, type WelcomeFrame } from "../../protocol/frames.ts";
import type { StatusHub } from "./status.ts";
import { OPEN, type SocketLike, type Transport } from "./transport.ts";

export interface LinkOwner {
  /** The socket is open and welcomed: (re)send whatever must be sent. */
  onReady(welcome: WelcomeFrame): void;
  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void;
  /** The socket was lost; the link will retry. */
  onDown(error: DovetailError): void;
  /** The link gave up for good. */
  onFailed(error: DovetailError): void;
}

export interface LinkConfig {
  url: string;
  token?: string;
  topic: string;
  role: "publish" | "subscribe";
  transport: Transport;
  reconnect: ReconnectOptions;
  /** Idle time after which a ping is sent; twice this without any frame and the socket is dropped. */
  pingIntervalMs: number;
  status: StatusHub;
}

/**
 * Errors that no retry can fix: the server refused who we are or what we asked for. Close codes
 * 4000 + HTTP status are how the gateway refuses an upgrade (workers/middleware/errors.ts).
 */
const FINAL_CODES = new Set(["unauthorized", "forbidden", "invalid_topic", "not_found", "unsupported_version", "bad_frame", "topic_deleted"]);

function unref(timer: unknown): void {
  (timer as { unref?: () => void } | null)?.unref?.();
}

export class Link {
  readonly #config: LinkConfig;
  readonly #owner: LinkOwner;
  #socket: SocketLike | null = null;
  #ready = false;
  #closed = false;
  #failed: DovetailError | null = null;
  #attempt = 0;
  #connecting = false;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #lastFrameAt = 0;
  /** An error frame that arrived before `welcome`: why the upgrade was refused. */
  #refusal: DovetailError | null = null;

  constructor(config: LinkConfig, owner: LinkOwner) {
    this.#config = config;
    this.#owner = owner;
  }

  /** True when frames can be sent now. */
  get ready(): boolean {
    return this.#ready;
  }

  get failed(): DovetailError | null {
    return this.#failed;
  }

  /** Open the socket if it is not open or opening. */
  start(): void {
    if (this.#closed || this.#failed || this.#socket || this.#connecting || this.#retryTimer) return;
    void this.#connect();
  }

  /** Send a frame; false when the socket is not ready (the owner resends on the next onReady). */
  send(text: string): boolean {
    if (!this.#ready || !this.#socket) return false;
    try {
      this.#socket.send(text);
      return true;
    } catch {
      this.#drop(new DovetailError("closed", "send failed; reconnecting"));
      return false;
    }
  }

  /** Drop the current socket and reconnect (used when the owner detects a protocol problem). */
  reset(reason: string): void {
    this.#drop(new DovetailError("internal", reason));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ready = false;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stopPing();
    const socket = this.#socket;
    this.#socket = null;
    try {
      socket?.close(1000, "client closed");
    } catch {
      // already closed
    }
  }

  async #connect(): Promise<void> {
    const { topic, role } = this.#config;
    this.#connecting = true;
    this.#refusal = null;
    this.#config.status.emit({ type: "connecting", topic, role, attempt: this.#attempt });
    let socket: SocketLike;
    try {
      socket = await this.#config.transport({ url: this.#config.url, token: this.#config.token });
    } catch (error) {
      this.#connecting = false;
      const e = error instanceof DovetailError ? error : new DovetailError("closed", String(error), {}, { cause: error });
      this.#lost(e);
      return;
    }
    this.#connecting = false;
    if (this.#closed) {
      try {
        socket.close(1000, "client closed");
      } catch {
        // ignore
      }
      return;
    }
    this.#socket = socket;
    this.#lastFrameAt = Date.now();
    socket.addEventListener("message", (event) => {
      if (this.#socket !== socket) return;
      this.#onMessage(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (this.#socket !== socket) return;
      const final = closeCodeError(event.code);
      const refusal = this.#refusal ?? (final ? new DovetailError(final, event.reason || `refused (close code ${event.code})`) : null);
      this.#drop(refusal ?? new DovetailError("closed", `connection closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`));
    });
    socket.addEventListener("error", () => {
      if (this.#socket !== socket) return;
      this.#drop(new DovetailError("closed", "connection error"));
    });
    this.#startPing();
  }

  #onMessage(data: unknown): void {
    this.#lastFrameAt = Date.now();
    const text = typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer);
    const parsed = parseServerFrame(text);
    if (!parsed.ok) {
      this.reset(`bad frame from server: ${parsed.error.message}`);
      return;
    }
    const frame = parsed.frame;
    if (frame.type === "pong" || frame.type === "unknown") return; // unknown types: from a newer server, ignored
    if (frame.type === "welcome") {
      this.#ready = true;
      this.#attempt = 0;
      this.#config.status.emit({ type: "connected", topic: this.#config.topic, role: this.#config.role });
      this.#owner.onReady(frame);
      return;
    }
    if (!this.#ready && frame.type === "error") {
      // An upgrade refused by the gateway: one error frame, then a close (4000 + status).
      this.#refusal = DovetailError.fromWire(frame);
      return;
    }
    this.#owner.onFrame(frame);
  }

  /** The current socket is gone: tell the owner, then retry or give up. */
  #drop(error: DovetailError): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#socket = null;
    this.#ready = false;
    this.#stopPing();
    try {
      socket.close(1000, "dropping");
    } catch {
      // already closed
    }
    this.#lost(error);
  }

  #lost(error: DovetailError): void {
    if (this.#closed) return;
    const { topic, role } = this.#config;
    const max = this.#config.reconnect.maxAttempts ?? Infinity;
    // A deleted topic ends a subscription; a publisher reconnects, and its next publish creates the topic afresh.
    const final = FINAL_CODES.has(error.code) && !(error.code === "topic_deleted" && role === "publish");
    if (final || this.#attempt + 1 >= max) {
      this.#failed =
        error.code === "closed" && this.#attempt + 1 >= max
          ? new DovetailError("closed", `${error.message} (gave up after ${this.#attempt + 1} attempts)`, {}, { cause: error })
          : error;
      this.#config.status.emit({ type: "failed", topic, role, error: this.#failed });
      this.#owner.onFailed(this.#failed);
      return;
    }
    this.#config.status.emit({ type: "disconnected", topic, role, error });
    this.#owner.onDown(error);
    const delayMs = backoffDelayMs(this.#attempt, this.#config.reconnect);
    this.#attempt += 1;
    this.#config.status.emit({ type: "reconnecting", topic, role, attempt: this.#attempt, delayMs });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#closed) void this.#connect();
    }, delayMs);
  }

  #startPing(): void {
    const interval = this.#config.pingIntervalMs;
    if (!(interval > 0)) return;
    this.#pingTimer = setInterval(() => {
      const idle = Date.now() - this.#lastFrameAt;
      if (idle >= 2 * interval) this.#drop(new DovetailError("timeout", `no frame from the server for ${idle} ms`));
      else if (idle >= interval && this.#socket?.readyState === OPEN) {
        try {
          this.#socket.send(PING_TEXT);
        } catch {
          // the close event follows
        }
      }
    }, interval);
    unref(this.#pingTimer);
  }

  #stopPing(): void {
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    this.#pingTimer = null;
  }
}
