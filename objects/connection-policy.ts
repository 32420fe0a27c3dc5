/**
 * The connection policy as a Topic module: what each socket may do and how much (issue 5), and
 * how a credential's sockets end (issue 18).
 *
 * - Every socket carries the grant the gateway gave it (protocol/grant.ts); a socket without one
 *   may do nothing.
 * - Frames are counted per connection against frame and byte buckets (objects/frame-limiter.ts);
 *   a refused frame is answered with `rate_limited`, its `id` and `retryAfterMs`, and a client
 *   that keeps sending while refused is closed with 1008.
 * - Publishes are counted per credential and topic, over WebSocket and HTTP alike.
 * - An API key's sockets are registered with Keys while they are open, so revoking the key finds
 *   exactly them; a key revoked before its socket registered is refused at once.
 */
import { CLOSE_CODES } from "../protocol/close-codes.ts";
import { apiKeyIdOf, credentialTag } from "../protocol/credential.ts";
import { DovetailError } from "../protocol/errors.ts";
import { encodeErrorFrame } from "../protocol/frames.ts";
import type { SocketGrant } from "../protocol/grant.ts";
import type { SocketAttachment } from "./fanout.ts";
import { admitFrame, fullBucket, newFrameLimitState, takeTokens, type Bucket } from "./frame-limiter.ts";
import type { Keys } from "./keys.ts";
import type { TopicModule } from "./topic-module.ts";

export interface ConnectionPolicyHost {
  /** The live attachment of a socket, and writing it back after a change. */
  attachment(ws: WebSocket): SocketAttachment;
  persist(ws: WebSocket): void;
  /** Every client socket with its attachment. */
  sockets(): Iterable<[WebSocket, SocketAttachment]>;
  /** Hibernatable sockets filed under `tag`. */
  taggedSockets(tag: string): WebSocket[];
  /** The socket is gone: stop serving it (every module's onSocketGone runs). */
  forget(ws: WebSocket): void;
  /** The bus's Keys object. */
  keys(): DurableObjectStub<Keys>;
  /** A refusal by one of these limits, for `amb_rate_limited_total{reason}` (objects/topic-metrics.ts). */
  rateLimited?(reason: "connection_frames" | "topic_messages"): void;
}

export class ConnectionPolicy implements TopicModule {
  readonly #host: ConnectionPolicyHost;
  /** Per-topic publish buckets by credential id (in memory: an idle topic forgets them, which only refills them). */
  readonly #publishBuckets = new Map<string, Bucket>();
  /** Sockets closed for policy (revoked, expired, abuse, topic deleted): frames still queued on them are dropped. */
  readonly #closed = new WeakSet<WebSocket>();

  constructor(host: ConnectionPolicyHost) {
    this.#host = host;
  }

  /** Whether frames from this socket are still handled. */
  isOpen(ws: WebSocket): boolean {
    return !this.#closed.has(ws);
  }

  /** Drop whatever this socket still sends (it is being closed). */
  markClosed(ws: WebSocket): void {
    this.#closed.add(ws);
  }

  /** Register an API key's socket with Keys: its id, `null` for other credentials, false when the key may no longer be used. */
  async register(grant: SocketGrant, topic: string): Promise<string | null | false> {
    const keyId = grant.tag ? apiKeyIdOf(grant.cred) : null;
    if (keyId === null) return null;
    const sid = crypto.randomUUID();
    return (await this.#host.keys().socketOpened(keyId, sid, topic)) ? sid : false;
  }

  onSocketGone(_ws: WebSocket, attachment: SocketAttachment): void {
    const keyId = attachment.grant ? apiKeyIdOf(attachment.grant.cred) : null;
    if (keyId === null || !attachment.sid) return;
    // Not awaited: a close never waits on Keys. A lost call leaves a row that the key's
    // revocation clears (it then asks this topic to close nothing).
    this.#host
      .keys()
      .socketClosed(keyId, attachment.sid)
      .catch((e: unknown) => console.error("topic: socketClosed failed", e));
  }

  onDelete(): void {
    this.#publishBuckets.clear();
  }

  /** What the socket may do. Every socket the gateway opens has a grant; one without may do nothing. */
  grantOf(ws: WebSocket): SocketGrant {
    const grant = this.#host.attachment(ws).grant;
    if (!grant) throw new DovetailError("forbidden", "this socket carries no grant");
    return grant;
  }

  /**
   * Count one inbound frame against the socket's frame and byte buckets. A refused frame is
   * answered with `rate_limited`, the frame's `id` and `retryAfterMs`; a client that keeps
   * sending while refused is closed with 1008. Returns whether the frame may be handled.
   */
  admit(ws: WebSocket, raw: string | ArrayBuffer, id: number | undefined): boolean {
    const attachment = this.#host.attachment(ws);
    const grant = attachment.grant;
    if (!grant) return true; // refused by grantOf() when it tries anything
    const now = Date.now();
    if (grant.exp !== undefined && now >= grant.exp) {
      this.closeCredentialSocket(ws, "the credential this socket was opened with has expired");
      return false;
    }
    if (!grant.rate) return true;
    // `r` is missing in attachments written before the refusal budget existed.
    if (!attachment.limit?.r) attachment.limit = newFrameLimitState(grant.rate, now);
    const verdict = admitFrame(attachment.limit, grant.rate, frameBytes(raw), now);
    this.#host.persist(ws);
    if (verdict.ok) return true;
    this.#host.rateLimited?.("connection_frames");
    try {
      ws.send(
        encodeErrorFrame(
          new DovetailError("rate_limited", `too many frames or bytes on this connection; retry after ${verdict.retryAfterMs} ms`, {
            retryAfterMs: verdict.retryAfterMs,
          }),
          id,
        ),
      );
      if (verdict.close) ws.close(CLOSE_CODES.policyViolation, "rate limit exceeded repeatedly");
    } catch {
      // Already closed.
    }
    if (verdict.close) {
      this.#closed.add(ws);
      this.#host.forget(ws);
    }
    return false;
  }

  /** Publish permission and the per-topic, per-credential message bucket. Throws the refusal. */
  checkPublish(grant: Pick<SocketGrant, "cred" | "pub" | "rate">, messages: number): void {
    if (!grant.pub) throw new DovetailError("forbidden", "this credential may not publish to this topic");
    const rate = grant.rate;
    if (!rate) return;
    const now = Date.now();
    let bucket = this.#publishBuckets.get(grant.cred);
    if (!bucket) this.#publishBuckets.set(grant.cred, (bucket = fullBucket(rate.topicMessageBurst, now)));
    const wait = takeTokens(bucket, rate.topicMessagesPerSecond, rate.topicMessageBurst, messages, now);
    if (wait > 0) {
      this.#host.rateLimited?.("topic_messages");
      throw new DovetailError(
        "rate_limited",
        `this credential publishes to this topic faster than ${rate.topicMessagesPerSecond} messages/s; retry after ${wait} ms`,
        { retryAfterMs: wait },
      );
    }
  }

  /** Close every socket opened with credential `credentialId` (a revoked key). Returns how many. */
  closeCredential(credentialId: string): number {
    const sockets = new Set(this.#host.taggedSockets(credentialTag(credentialId)));
    for (const [ws, attachment] of this.#host.sockets()) if (attachment.grant?.cred === credentialId) sockets.add(ws);
    for (const ws of sockets) this.closeCredentialSocket(ws, "the credential this socket was opened with was revoked");
    return sockets.size;
  }

  /** An `unauthorized` error frame, then close code 4401. */
  closeCredentialSocket(ws: WebSocket, message: string): void {
    this.#closed.add(ws);
    try {
      ws.send(encodeErrorFrame(new DovetailError("unauthorized", message)));
      ws.close(CLOSE_CODES.credentialEnded, "credential revoked or expired");
    } catch {
      // Already closed.
    }
    this.#host.forget(ws);
  }
}

/** Answer an upgrade that is refused after all: one `unauthorized` error frame, then 4401. */
export function refusedSocket(pair: { 0: WebSocket; 1: WebSocket }, message: string): Response {
  const server = pair[1];
  server.accept();
  server.send(encodeErrorFrame(new DovetailError("unauthorized", message)));
  server.close(CLOSE_CODES.credentialEnded, "credential revoked or expired");
  return new Response(null, { status: 101, webSocket: pair[0] });
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
