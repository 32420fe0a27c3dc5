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
 */
import { DovetailError } from "./errors.ts";
import { Link, type LinkConfig, type LinkOwner } from "./link.ts";
import type { ServerFrame, TopicLimits, WelcomeFrame } from "./protocol.ts";

/** Most frames unanswered at once on one pipe; well inside the topic's 64-seq dedup window. */
export const MAX_INFLIGHT_FRAMES = 32;

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
  #pausedUntil = 0;
  #pauseTimer: ReturnType<typeof setTimeout> | null = null;
  #failed: DovetailError | null = null;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
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
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new DovetailError("closed", "the bus is closed"));
    return new Promise<FrameResult>((resolve, reject) => {
      this.#queue.push({ messages: messagesJson, count, seq: null, id: 0, resolve, reject });
      this.#link.start();
      this.#pump();
    });
  }

  /** Resolves when nothing is waiting or unanswered. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(error = new DovetailError("closed", "the bus is closed")): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.close();
    if (this.#pauseTimer) clearTimeout(this.#pauseTimer);
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
    if (frame.type === "ack") {
      const f = this.#take(frame.id);
      if (!f) return;
      f.resolve({ offset: frame.offset, count: frame.count });
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
      // Not stored: send it again (same seq) and everything after it once the wait is over.
      this.#rewind(seq, true);
      this.#pause(error.details.retryAfterMs ?? 1000);
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

  #pause(ms: number): void {
    this.#pausedUntil = Date.now() + ms;
    if (this.#pauseTimer) clearTimeout(this.#pauseTimer);
    this.#pauseTimer = setTimeout(() => {
      this.#pauseTimer = null;
      this.#pausedUntil = 0;
      this.#pump();
    }, ms);
  }

  #take(id: number): OutFrame | undefined {
    const f = this.#byId.get(id);
    if (!f) return undefined;
    this.#byId.delete(id);
    const i = this.#inflight.indexOf(f);
    if (i >= 0) this.#inflight.splice(i, 1);
    return f;
  }

  #pump(): void {
    if (!this.#link.ready || this.#pausedUntil > Date.now()) return;
    while (this.#queue.length > 0 && this.#inflight.length < MAX_INFLIGHT_FRAMES) {
      const f = this.#queue[0]!;
      if (f.seq === null) f.seq = this.#nextSeq++;
      else this.#nextSeq = Math.max(this.#nextSeq, f.seq + 1);
      f.id = this.#nextId++;
      const text = `{"type":"publish","id":${f.id},"producer":{"id":"${this.producerId}","seq":${f.seq}},"messages":[${f.messages}]}`;
      if (!this.#link.send(text)) return; // not ready after all; onReady sends it
      this.#queue.shift();
      this.#byId.set(f.id, f);
      this.#inflight.push(f);
    }
  }

  #rejectAll(error: DovetailError): void {
    const all = [...this.#inflight, ...this.#queue];
    this.#inflight = [];
    this.#queue = [];
    this.#byId.clear();
    for (const f of all) f.reject(error);
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.outstanding > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
