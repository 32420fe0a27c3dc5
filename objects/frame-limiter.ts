/**
 * Token buckets: the one rate-limit algorithm of the bus. A bucket holds up to `burst` tokens,
 * refills at `perSecond`, and each request, frame, byte or message takes tokens.
 *
 * WebSocket frames bypass the gateway once a socket is upgraded, so the topic object limits
 * frames and bytes per connection with {@link admitFrame}; the bucket state is kept in the
 * socket's attachment (objects/fanout.ts SocketAttachment.limit) so it survives hibernation.
 * A client that ignores `retryAfterMs` is closed with 1008 (policy violation, RFC 6455 §7.4.1):
 * see {@link REFUSAL_BURST}.
 *
 * @example
 * const bucket = fullBucket(200);
 * takeTokens(bucket, 100, 200, 1, Date.now()) // 0: admitted
 */
import type { RateConfig } from "../protocol/credential.ts";

/** A bucket: tokens left and when they were last counted (ms since the epoch). */
export interface Bucket {
  t: number;
  at: number;
}

export function fullBucket(burst: number, now = Date.now()): Bucket {
  return { t: burst, at: now };
}

/**
 * Take `n` tokens. Returns 0 when admitted (the bucket is updated), otherwise the milliseconds
 * until `n` tokens will be there (the bucket is only refilled). A cost larger than the burst is
 * charged as the whole burst, so an oversized item waits for a full bucket instead of forever.
 */
export function takeTokens(bucket: Bucket, perSecond: number, burst: number, n: number, now: number): number {
  const elapsed = Math.max(0, now - bucket.at);
  bucket.t = Math.min(burst, bucket.t + (elapsed * perSecond) / 1000);
  bucket.at = now;
  const cost = Math.min(n, burst);
  if (bucket.t >= cost) {
    bucket.t -= cost;
    return 0;
  }
  return Math.max(1, Math.ceil(((cost - bucket.t) * 1000) / perSecond));
}

/**
 * The abuse policy. Every refusal takes one token from the connection's refusal bucket, which
 * holds {@link REFUSAL_BURST} and refills at {@link REFUSALS_PER_SECOND}; when it is empty the
 * socket is closed with 1008. A client that waits `retryAfterMs` draws at most its pipeline of
 * refusals (the SDK: 32 frames, then one at a time) per wait and never empties it; a client that
 * keeps sending draws one per frame. Counting refusals in a row instead never fired under a flood,
 * because a refilled token admits a frame between refusals and reset the count (issue 18).
 */
export const REFUSAL_BURST = 200;
export const REFUSALS_PER_SECOND = 20;

/** Per-connection limiter state, stored in the socket attachment. Short keys: it is serialized per frame. */
export interface FrameLimitState {
  /** frames */
  f: Bucket;
  /** bytes */
  b: Bucket;
  /** refusals left before the abuse close */
  r: Bucket;
}

export type FrameLimits = Pick<RateConfig, "framesPerSecond" | "frameBurst" | "bytesPerSecond" | "byteBurst">;

export type FrameVerdict = { ok: true } | { ok: false; retryAfterMs: number; close: boolean };

/** Count one inbound frame of `bytes` against the connection's buckets (mutates `state`). */
export function admitFrame(state: FrameLimitState, limits: FrameLimits, bytes: number, now: number): FrameVerdict {
  const waitFrames = takeTokens(state.f, limits.framesPerSecond, limits.frameBurst, 1, now);
  const waitBytes = waitFrames === 0 ? takeTokens(state.b, limits.bytesPerSecond, limits.byteBurst, bytes, now) : 0;
  if (waitFrames === 0 && waitBytes === 0) return { ok: true };
  if (waitBytes > 0) state.f.t = Math.min(limits.frameBurst, state.f.t + 1); // the frame was not admitted
  const close = takeTokens(state.r, REFUSALS_PER_SECOND, REFUSAL_BURST, 1, now) > 0;
  return { ok: false, retryAfterMs: Math.max(waitFrames, waitBytes), close };
}

export function newFrameLimitState(limits: FrameLimits, now = Date.now()): FrameLimitState {
  return { f: fullBucket(limits.frameBurst, now), b: fullBucket(limits.byteBurst, now), r: fullBucket(REFUSAL_BURST, now) };
}
