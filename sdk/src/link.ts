/**
 * Link: one topic WebSocket that reconnects by itself. Its owner (a publish pipe or a
 * subscription) is told when the socket is ready (after the `welcome` frame), gets every other
 * frame, and is told when the socket is lost or the link gives up. The owner decides what to
 * resend; the link only knows sockets, credentials, backoff and keep-alive.
 *
 * - Each attempt asks the credentials for a token (a token function is called every time) and
 *   must reach `welcome` within `connectTimeoutMs`, or it counts as failed.
 * - Retries follow the give-up policy of backoff.ts (`ReconnectBudget`).
 * - A credential that ends on a live socket (an `unauthorized` error frame, then close 4401:
 *   a JWT's `exp` passed, or the key was revoked), or an upgrade refused as `unauthorized`, is
 *   retried once at once with a fresh token when the token is a function; the owner resumes as
 *   after any reconnect. A second refusal, or the function returning the refused token again,
 *   ends the link with `unauthorized`.
 */
import { ReconnectBudget, type ReconnectOptions } from "./backoff.ts";
import { closeCodeError } from "../../protocol/close-codes.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { parseServerFrame, PING_TEXT, type ServerFrame, type WelcomeFrame } from "../../protocol/frames.ts";
import type { PatternWelcomeFrame } from "../../protocol/patterns.ts";
import type { StatusHub } from "./status.ts";
import { sameTokenError, type Credentials } from "./token.ts";
import { OPEN, type SocketLike, type Transport } from "./transport.ts";

export interface LinkOwner {
  /** The socket is open and welcomed (a pattern socket's welcome names its pattern): (re)send whatever must be sent. */
  onReady(welcome: WelcomeFrame | PatternWelcomeFrame): void;
  onFrame(frame: Exclude<ServerFrame, WelcomeFrame | PatternWelcomeFrame>): void;
  /** The socket was lost, or an attempt failed; the link will retry. */
  onDown(error: DovetailError): void;
  /** The link gave up for good. */
  onFailed(error: DovetailError): void;
}

export interface LinkConfig {
  url: string;
  credentials: Credentials;
  topic: string;
  role: "publish" | "subscribe" | "consume";
  transport: Transport;
  reconnect: ReconnectOptions;
  /** Idle time after which a ping is sent; twice this without any frame and the socket is dropped. */
  pingIntervalMs: number;
  /** Longest one attempt may take, from opening the socket to the topic's `welcome`. */
  connectTimeoutMs: number;
  status: StatusHub;
}

/**
 * The default `connectTimeoutMs`. A welcome normally comes within a round trip or two (a topic
 * waking from hibernation included); nats.js allows its handshake 20 s. Half that, because a
 * failed attempt is simply retried.
 */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Errors that no retry can fix: the server refused who we are or what we asked for. Close codes
 * 4000 + HTTP status are how the gateway refuses an upgrade (workers/middleware/errors.ts).
 */
const FINAL_CODES = new Set(["unauthorized", "forbidden", "invalid_topic", "invalid_field", "not_found", "unsupported_version", "bad_frame", "topic_deleted"]);

function unref(timer: unknown): void {
  (timer as { unref?: () => void } | null)?.unref?.();
}

function asDovetailError(error: unknown): DovetailError {
  return error instanceof DovetailError ? error : new DovetailError("closed", String(error), {}, { cause: error });
}

/**
 * `pending`, unless `signal` aborts first (then its reason): a token function or a transport that
 * never answers cannot hold an attempt. `late` gets a value that came after the abort (a socket
 * to close).
 */
function unlessAborted<T>(pending: Promise<T>, signal: AbortSignal, late?: (value: T) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (!signal.aborted) resolve(value);
        else late?.(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(signal.aborted ? signal.reason : error);
      },
    );
  });
}

function closeQuietly(socket: SocketLike, reason: string): void {
  try {
    socket.close(1000, reason);
  } catch {
    // already closed
  }
}

export class Link {
  readonly #config: LinkConfig;
  readonly #owner: LinkOwner;
  readonly #budget: ReconnectBudget;
  #socket: SocketLike | null = null;
  #ready = false;
  #closed = false;
  #failed: DovetailError | null = null;
  /** The attempt in progress (token, transport, welcome); aborted by its timeout or close(). */
  #attempt: AbortController | null = null;
  #attemptTimer: ReturnType<typeof setTimeout> | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #lastFrameAt = 0;
  /** An error frame that explains the close that follows: a refused upgrade, or a credential that ended. */
  #refusal: DovetailError | null = null;
  /** The token of the current (or last) attempt. */
  #token: string | undefined;
  /** Set while the one fresh token asked for after a refusal is tried: the refused token and why. */
  #refreshing: { token: string | undefined; error: DovetailError } | null = null;

  constructor(config: LinkConfig, owner: LinkOwner) {
    this.#config = config;
    this.#owner = owner;
    this.#budget = new ReconnectBudget(config.reconnect);
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
    if (this.#closed || this.#failed || this.#socket || this.#attempt || this.#retryTimer) return;
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
    this.#endAttempt(new DovetailError("closed", "the link was closed"));
    this.#stopPing();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) closeQuietly(socket, "client closed");
  }

  async #connect(): Promise<void> {
    const { topic, role, url } = this.#config;
    const attempt = new AbortController();
    this.#attempt = attempt;
    this.#refusal = null;
    this.#budget.down(Date.now());
    this.#config.status.emit({ type: "connecting", topic, role, attempt: this.#budget.attempts });
    const timeoutMs = this.#config.connectTimeoutMs;
    if (timeoutMs > 0 && timeoutMs < Infinity) {
      this.#attemptTimer = setTimeout(() => this.#attemptTimedOut(timeoutMs), timeoutMs);
    }
    let socket: SocketLike;
    try {
      const token = await unlessAborted(this.#config.credentials.get(), attempt.signal);
      if (this.#refreshing && token === this.#refreshing.token) throw sameTokenError(this.#refreshing.error);
      this.#token = token;
      socket = await unlessAborted(this.#config.transport({ url, token, signal: attempt.signal }), attempt.signal, (late) =>
        closeQuietly(late, "attempt abandoned"),
      );
    } catch (error) {
      if (this.#attempt !== attempt || this.#closed) return; // closed meanwhile
      this.#endAttempt();
      this.#lost(asDovetailError(error));
      return;
    }
    if (this.#closed || this.#attempt !== attempt) {
      closeQuietly(socket, "client closed");
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

  /** The attempt took longer than `connectTimeoutMs`: stop it; it counts as failed. */
  #attemptTimedOut(timeoutMs: number): void {
    this.#attemptTimer = null;
    const error = new DovetailError("timeout", `no welcome from ${this.#config.topic} within ${timeoutMs} ms`);
    if (this.#socket && !this.#ready) this.#drop(error);
    else if (!this.#socket) this.#attempt?.abort(error); // still getting a token or opening: #connect reports it
  }

  /** The attempt is over (welcomed, failed or closed). */
  #endAttempt(reason?: DovetailError): void {
    if (this.#attemptTimer) clearTimeout(this.#attemptTimer);
    this.#attemptTimer = null;
    const attempt = this.#attempt;
    this.#attempt = null;
    if (reason) attempt?.abort(reason);
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
      this.#endAttempt();
      this.#budget.connected();
      this.#refreshing = null;
      this.#config.status.emit({ type: "connected", topic: this.#config.topic, role: this.#config.role });
      this.#owner.onReady(frame);
      return;
    }
    if (frame.type === "error" && (!this.#ready || (frame.id === undefined && frame.code === "unauthorized"))) {
      // Before welcome: an upgrade refused by the gateway (one error frame, then 4000 + status).
      // After: the socket's credential ended (expired or revoked); close 4401 follows
      // (CLOSE_CODES.credentialEnded). Either way the close handler decides, not the owner.
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
    this.#endAttempt();
    this.#stopPing();
    closeQuietly(socket, "dropping");
    this.#lost(error);
  }

  #lost(error: DovetailError): void {
    if (this.#closed) return;
    const { topic, role } = this.#config;
    const now = Date.now();
    if (error.code === "unauthorized" && this.#config.credentials.refreshable && !this.#refreshing) {
      // The credential was refused or ended (close CLOSE_CODES.credentialEnded): one fresh token, at once.
      this.#refreshing = { token: this.#token, error };
      this.#budget.down(now);
      this.#retry(error, 0);
      return;
    }
    // A deleted topic ends a subscription; a publisher reconnects, and its next publish creates the topic afresh.
    const final = FINAL_CODES.has(error.code) && !(error.code === "topic_deleted" && role === "publish");
    const delayMs = final ? null : this.#budget.failed(now);
    if (delayMs === null) {
      this.#failed = final
        ? error
        : new DovetailError(
            "closed",
            `gave up connecting to ${topic} after ${this.#budget.attempts} failed attempts in ${this.#budget.downFor(now)} ms: ${error.message}`,
            {},
            { cause: error },
          );
      this.#config.status.emit({ type: "failed", topic, role, error: this.#failed });
      this.#owner.onFailed(this.#failed);
      return;
    }
    this.#retry(error, delayMs);
  }

  #retry(error: DovetailError, delayMs: number): void {
    const { topic, role } = this.#config;
    this.#config.status.emit({ type: "disconnected", topic, role, error });
    this.#owner.onDown(error);
    if (this.#closed) return; // the owner closed the link on hearing it
    this.#config.status.emit({ type: "reconnecting", topic, role, attempt: this.#budget.attempts, delayMs });
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
