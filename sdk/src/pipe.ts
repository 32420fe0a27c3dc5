/**
 * PublishPipe: the publishing side of one topic. One WebSocket (a Link), one idempotent producer
 * identity, and the frames on their way. Every `bus.publish` and every `Publisher` of the topic
 * sends its frames through the pipe, which stamps them `{producer: {id, seq}}` in send order.
 *
 * Exactly-once publishing across reconnects:
 * - A frame keeps its seq until the topic answers it. When the socket drops, every unanswered
 *   frame is sent again, in order, with the same seq; the topic stores a (producer, seq) once and
 *   answers a resend with the first copy's offsets (objects/commit-queue.ts).
 * - The topic remembers the last PRODUCER_WINDOW (64) seqs of a producer, so at most
 *   {@link MAX_INFLIGHT_FRAMES} frames are unanswered at a time: a resend is always inside the
 *   window.
 * - A frame the topic refused did not use its seq, and every later frame already sent was refused
 *   with `sequence_gap`; those later frames are renumbered from the refused seq and sent again.
 *   That holds once the topic knows the producer; a topic that has not seen it takes any seq as its
 *   start, so a new pipe sends ONE frame until the first ack (one round trip) and pipelines after.
 *
 * Rate limits (issue 18). A frame refused with `rate_limited` was not stored; it and every frame
 * after it go again, same seqs, after `retryAfterMs`. Then the pipe sends one frame at a time
 * until one is acked, and from then on keeps the frames it sends {@link SendSpacing} apart, the
 * spacing learned from the refusals: resending the whole window after every pause drew up to 31
 * refusals per token of the limit, and the topic closes a connection with 1008 once it has drawn
 * 200 refusals (refilled at 20/s; objects/frame-limiter.ts).
 */
import { DovetailError } from "../../protocol/errors.ts";
import { Link, type LinkConfig, type LinkOwner } from "./link.ts";
import type { ServerFrame, TopicLimits, WelcomeFrame } from "../../protocol/frames.ts";

/** Most frames unanswered at once on one pipe; well inside the topic's 64-seq dedup window. */
export const MAX_INFLIGHT_FRAMES = 32;
/** A learned spacing is halved after this long without a `rate_limited` refusal. */
export const SPACING_HOLD_MS = 5_000;
/** Largest spacing kept between frames, whatever the topic asks to wait. */
export const MAX_SPACING_MS = 10_000;

/**
 * How far apart a rate-limited pipe sends its frames: learned from `rate_limited` refusals, and
 * given back slowly once they stop.
 *
 * Why adding each wait to the spacing works: the topic's bucket refills at R tokens/s (a frame
 * costs one frame token, or its bytes). If the previous frame left t >= 0 tokens and the next one
 * comes s ms later, it is refused when t + s*R/1000 < 1, with
 * retryAfterMs = (1 - t - s*R/1000) * 1000/R <= 1000/R - s. So spacing + retryAfterMs never
 * exceeds the limit's own interval 1000/R (but for the server's rounding up to whole ms): the
 * spacing climbs to the limit's pace in a refusal or two, and frames at that pace are admitted.
 * Only the first refusal of a burst counts: the answers to the frames behind it are ignored.
 *
 * Every {@link SPACING_HOLD_MS} without a refusal the spacing halves (below 1 ms it is 0). Under a
 * limit still in force that probe costs a few refusals (at most the frames on the wire); once the
 * application sends slower than the limit, the pacing fades out.
 *
 * @example
 * const spacing = new SendSpacing();
 * spacing.refused(180, now);  // spacing.current(now) === 180
 */
export class SendSpacing {
  #ms = 0;
  #since = 0;

  /** A frame was refused with `rate_limited` at `now`, to be tried again after `retryAfterMs`. */
  refused(retryAfterMs: number, now: number): void {
    this.#ms = Math.min(MAX_SPACING_MS, this.current(now) + Math.max(1, retryAfterMs));
    this.#since = now;
  }

  /** The spacing to keep between frames sent from `now` on (0: none). */
  current(now: number): number {
    if (this.#ms === 0) return 0;
    const halvings = Math.floor((now - this.#since) / SPACING_HOLD_MS);
    if (halvings > 0) {
      this.#ms /= 2 ** halvings;
      if (this.#ms < 1) this.#ms = 0;
      this.#since += halvings * SPACING_HOLD_MS;
    }
    return this.#ms;
  }
}

export interface FrameResult {
  offset: number;
  count: number;
}

interface OutFrame {
  /** JSON text of the messages array's members, joined by commas. */
  messages: string;
  count: number;
  seq: number | null;
  id: number;
  resolve: (r: FrameResult) => void;
  reject: (e: DovetailError) => void;
  /** Its caller stopped waiting after it was sent: it still goes (its seq must), but holds no `idle()`. */
  abandoned: boolean;
}

/** A frame handed to the pipe, and a way to stop waiting for it. */
export interface PendingFrame {
  readonly result: Promise<FrameResult>;
  /**
   * The caller stopped waiting (a timeout or an abort). A frame the topic has not taken is
   * withdrawn: it rejects with `error`, is never stored, and `true` is returned. A frame already
   * sent stays (a resend after a reconnect keeps the producer's seqs whole), may still be stored,
   * no longer holds `idle()`, and `false` is returned.
   */
  cancel(error: DovetailError): boolean;
}

function randomProducerId(): string {
  return `p-${crypto.randomUUID()}`;
}

export class PublishPipe implements LinkOwner {
  readonly #link: Link;
  readonly producerId = randomProducerId();
  #nextSeq = 0;
  #nextId = 1;
  /** Frames to send, in order; those at the front may already carry a seq (resends). */
  #queue: OutFrame[] = [];
  #inflight: OutFrame[] = [];
  readonly #byId = new Map<number, OutFrame>();
  /** No frame leaves before this time (ms since the epoch): a `rate_limited` wait, or the spacing. */
  #notBefore = 0;
  #wakeTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #spacing = new SendSpacing();
  /**
   * While not null, one frame at a time: until a frame with an id from this one on is acked. Set
   * by a `rate_limited` refusal; 0 at the start, so that the first frame establishes the producer.
   */
  #singleFromId: number | null = 0;
  #failed: DovetailError | null = null;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  /** Frames waiting or unanswered whose callers gave up (they do not hold `idle()`). */
  #abandoned = 0;
  /** Limits the topic announced; null until the first welcome. */
  limits: TopicLimits | null = null;

  constructor(config: Omit<LinkConfig, "role">) {
    this.#link = new Link({ ...config, role: "publish" }, this);
  }

  /** Set once the pipe can never send again (the bus makes a new pipe on the next publish). */
  get failed(): DovetailError | null {
    return this.#failed;
  }

  /** Frames waiting or unanswered. */
  get outstanding(): number {
    return this.#queue.length + this.#inflight.length;
  }

  /** Send one frame of already-encoded messages; resolves with its offsets once durable. */
  submit(messagesJson: string, count: number): Promise<FrameResult> {
    return this.enqueue(messagesJson, count).result;
  }

  /** {@link submit}, with a way to stop waiting ({@link PendingFrame.cancel}). */
  enqueue(messagesJson: string, count: number): PendingFrame {
    const refusal = this.#failed ?? (this.#closed ? new DovetailError("closed", "the bus is closed") : null);
    if (refusal) return { result: Promise.reject(refusal), cancel: () => false };
    let frame!: OutFrame;
    const result = new Promise<FrameResult>((resolve, reject) => {
      frame = { messages: messagesJson, count, seq: null, id: 0, resolve, reject, abandoned: false };
    });
    this.#queue.push(frame);
    this.#link.start();
    this.#pump();
    return { result, cancel: (error) => this.#cancel(frame, error) };
  }

  /** Resolves when nothing is waiting or unanswered (but frames whose callers gave up). */
  idle(): Promise<void> {
    if (this.outstanding - this.#abandoned === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(error = new DovetailError("closed", "the bus is closed")): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.close();
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    this.#rejectAll(error);
  }

  // -- LinkOwner ------------------------------------------------------------------------------

  onReady(welcome: WelcomeFrame): void {
    this.limits = welcome.limits;
    // Everything unanswered goes again, first, in order, with the same seq.
    this.#byId.clear();
    this.#queue = [...this.#inflight, ...this.#queue];
    this.#inflight = [];
    this.#pump();
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    if (frame.type === "ack" || frame.type === "acks") {
      // `acks`: the answers to several frames that one commit made durable (the pipe opens its
      // socket with `?acks=batch`); each is handled as its own `ack` would be.
      for (const ack of frame.type === "ack" ? [frame] : frame.acks) {
        const f = this.#take(ack.id);
        if (!f) continue;
        if (this.#singleFromId !== null && ack.id >= this.#singleFromId) this.#singleFromId = null; // admitted: the whole window again
        f.resolve({ offset: ack.offset, count: ack.count });
      }
      this.#pump();
      this.#checkIdle();
      return;
    }
    if (frame.type === "error" && frame.id !== undefined) {
      const f = this.#byId.get(frame.id);
      if (!f) return; // an answer to a frame already renumbered
      this.#onRefused(f, DovetailError.fromWire(frame));
    }
  }

  onDown(): void {
    // Nothing to do: onReady resends.
  }

  onFailed(error: DovetailError): void {
    this.#failed = error;
    this.#rejectAll(error);
  }

  // -------------------------------------------------------------------------------------------

  #onRefused(f: OutFrame, error: DovetailError): void {
    const seq = f.seq!;
    if (error.code === "rate_limited") {
      // Not stored: send it again (same seq) and everything after it once the wait is over, one
      // frame at a time until one is admitted, then spaced. The later frames already on the wire
      // are refused too (rate_limited or sequence_gap); their answers are ignored (renumbered).
      const waitMs = Math.max(0, error.details.retryAfterMs ?? 1000);
      const now = Date.now();
      this.#rewind(seq, true);
      this.#singleFromId = this.#nextId;
      this.#spacing.refused(waitMs, now);
      this.#notBefore = Math.max(this.#notBefore, now + waitMs);
      this.#pump();
      return;
    }
    if (error.code === "sequence_gap") {
      // The topic's idea of this producer differs from ours (it forgot it, or a frame before
      // this one was refused in a way we did not see): continue where the topic expects.
      this.#rewind(seq, true, error.details.expected ?? seq);
      this.#pump();
      return;
    }
    this.#take(f.id);
    f.reject(error);
    this.#rewind(seq, false);
    this.#pump();
    this.#checkIdle();
  }

  /**
   * Take back every stamped frame from `seq` (inclusive or not) so it is numbered again from
   * `startSeq` and sent again; answers to their old ids are ignored from now on.
   */
  #rewind(seq: number, inclusive: boolean, startSeq = seq): void {
    const again: OutFrame[] = [];
    const keep: OutFrame[] = [];
    for (const f of this.#inflight) {
      if (f.seq !== null && (inclusive ? f.seq >= seq : f.seq > seq)) {
        this.#byId.delete(f.id);
        again.push(f);
      } else keep.push(f);
    }
    this.#inflight = keep;
    const queued = this.#queue;
    for (const f of [...again, ...queued]) f.seq = null;
    this.#queue = [...again, ...queued];
    this.#nextSeq = startSeq;
  }

  #take(id: number): OutFrame | undefined {
    const f = this.#byId.get(id);
    if (!f) return undefined;
    this.#byId.delete(id);
    const i = this.#inflight.indexOf(f);
    if (i >= 0) this.#inflight.splice(i, 1);
    if (f.abandoned) this.#abandoned -= 1;
    return f;
  }

  #cancel(f: OutFrame, error: DovetailError): boolean {
    if (f.abandoned) return false;
    // Not stamped: never on a socket, or refused and taken back by #rewind (not stored either way).
    const i = f.seq === null ? this.#queue.indexOf(f) : -1;
    if (i >= 0) {
      this.#queue.splice(i, 1);
      f.reject(error);
      this.#checkIdle();
      return true;
    }
    if (!this.#inflight.includes(f) && !this.#queue.includes(f)) return false; // already answered
    f.abandoned = true;
    this.#abandoned += 1;
    this.#checkIdle();
    return false;
  }

  #pump(): void {
    if (!this.#link.ready) return;
    const window = this.#singleFromId === null ? MAX_INFLIGHT_FRAMES : 1;
    while (this.#queue.length > 0 && this.#inflight.length < window) {
      const now = Date.now();
      if (now < this.#notBefore) {
        this.#wakeAt(this.#notBefore - now);
        return;
      }
      const f = this.#queue[0]!;
      if (f.seq === null) f.seq = this.#nextSeq++;
      else this.#nextSeq = Math.max(this.#nextSeq, f.seq + 1);
      f.id = this.#nextId++;
      const text = `{"type":"publish","id":${f.id},"producer":{"id":"${this.producerId}","seq":${f.seq}},"messages":[${f.messages}]}`;
      if (!this.#link.send(text)) return; // not ready after all; onReady sends it
      this.#queue.shift();
      this.#byId.set(f.id, f);
      this.#inflight.push(f);
      const spacing = this.#spacing.current(now);
      if (spacing > 0) this.#notBefore = now + spacing;
    }
  }

  /** Pump again in `ms` (an earlier wake-up already set pumps, and sets the next one). */
  #wakeAt(ms: number): void {
    if (this.#wakeTimer || this.#closed) return;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null;
      this.#pump();
    }, ms);
  }

  #rejectAll(error: DovetailError): void {
    const all = [...this.#inflight, ...this.#queue];
    this.#inflight = [];
    this.#queue = [];
    this.#byId.clear();
    this.#abandoned = 0;
    for (const f of all) f.reject(error);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.outstanding - this.#abandoned > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
