/**
 * Publisher: batching on top of a topic's publish pipe, like Kafka's `linger.ms` / `batch.size`.
 * `send()` puts a message in the current batch; the batch leaves when it holds `maxBatch`
 * messages or `lingerMs` after its first message, and each `send()` resolves with its offset
 * once the topic has committed the frame.
 *
 * Every `send()` settles: a send fails with `timeout` once `timeoutMs` have passed both since it
 * was made and since the publisher last heard a confirm. The clock covers waiting for room,
 * batching, the connection and the confirm, as Kafka's `delivery.timeout.ms` does, but confirms
 * that keep arriving hold it back: a publisher slowed by a rate limit or a long backlog is slow,
 * not failed (its sends wait their turn), while one that hears nothing (a wrong URL, a stopped
 * bus) fails what it holds after `timeoutMs`. A `signal` is a hard cut-off. A message whose wait
 * ends before the topic took it is withdrawn and never stored; one already sent may still be
 * stored, and the error says which. One timer serves the whole publisher.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { encodeMessage, type EncodedMessage, type PublishOptions } from "./message.ts";
import { MAX_INFLIGHT_FRAMES, type PendingFrame, type PublishPipe } from "./pipe.ts";
import { abortError, DEFAULT_TIMEOUT_MS, timeoutError, timeoutOf, waitFor, type WaitOptions } from "./wait.ts";

export interface PublisherOptions {
  /** How long a batch waits for more messages after its first one. Default 5 ms; 0 = end of the current task. */
  lingerMs?: number;
  /** Most messages per frame. Default 500 (the topic's limit, announced on connect, also applies). */
  maxBatch?: number;
  /** Most payload bytes per frame. Default 1 MiB (the topic's limit also applies). */
  maxBatchBytes?: number;
  /** Most frames of this publisher unanswered at once. Default 8, at most 32. */
  maxInFlight?: number;
  /**
   * Most messages this publisher holds (waiting to be batched or unconfirmed). When full, further
   * sends wait: their payload is encoded and queued only once room frees up, and `ready()`
   * resolves. Default 10,000.
   */
  maxQueued?: number;
  /**
   * Default `timeoutMs` of each `send()`: how long it may wait, from the call or from the
   * publisher's last confirm, whichever is later. Default: the bus's `timeoutMs` (30 s).
   * `Infinity` waits as long as it takes.
   */
  timeoutMs?: number;
}

export const DEFAULT_LINGER_MS = 5;
export const DEFAULT_MAX_BATCH = 500;
export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 8;
export const DEFAULT_MAX_QUEUED = 10_000;

/** Where a message is: waiting for room (not encoded yet), in the batch, or in a frame. */
const BLOCKED = 0;
const BATCHED = 1;
const SENT = 2;

interface Item {
  data: unknown;
  options: PublishOptions | undefined;
  /** Set once admitted to the batch. */
  message: EncodedMessage | null;
  state: typeof BLOCKED | typeof BATCHED | typeof SENT;
  frame: Frame | null;
  timeoutMs: number;
  /** When `send()` was called (ms since the epoch). */
  since: number;
  resolve: (offset: number) => void;
  reject: (e: DovetailError) => void;
  done: boolean;
  unlisten: (() => void) | null;
}

interface Frame {
  pending: PendingFrame;
  /** Items whose callers still wait. */
  waiting: number;
}

/**
 * A batching publisher for one topic, from `bus.publisher(topic, options)`.
 *
 * @example
 * const pub = bus.publisher<{ step: number }>("agents.events", { lingerMs: 5, maxBatch: 500 });
 * for (const e of events) pub.send(e).catch(console.error);
 * await pub.flush();
 */
export class Publisher<T = unknown> {
  readonly topic: string;
  readonly #pipe: () => PublishPipe;
  readonly #lingerMs: number;
  readonly #maxBatch: number;
  readonly #maxBatchBytes: number;
  readonly #maxInFlight: number;
  readonly #maxQueued: number;
  readonly #timeoutMs: number;
  #batch: Item[] = [];
  #batchBytes = 0;
  #held = 0;
  #framesOut = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #microtask = false;
  /**
   * Sends waiting for room, oldest first, from `#blockedHead` on: a queue taken from the front by
   * moving an index, as `Array.prototype.shift()` copies every element behind the first (made a
   * plain loop of n sends O(n²) once it outran the confirms). A send given up while it waits stays
   * in place, settled, and is skipped when reached, so a shared signal aborting many costs no search.
   */
  #blocked: (Item | undefined)[] = [];
  #blockedHead = 0;
  #readyWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  /** Sends whose promises have not settled. */
  #unsettled = 0;
  /** Items in frames, for the deadline sweep. */
  readonly #sent = new Set<Item>();
  #deadlineTimer: ReturnType<typeof setTimeout> | null = null;
  #deadlineAt = Infinity;
  /** When the topic last answered a frame of this publisher (ms since the epoch). */
  #progressAt = 0;
  #closed = false;

  /** @internal use `bus.publisher()` */
  constructor(topic: string, pipe: () => PublishPipe, options: PublisherOptions = {}, busTimeoutMs: number = DEFAULT_TIMEOUT_MS) {
    this.topic = topic;
    this.#pipe = pipe;
    this.#lingerMs = Math.max(0, options.lingerMs ?? DEFAULT_LINGER_MS);
    this.#maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.#maxBatchBytes = Math.max(1, options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.#maxInFlight = Math.min(MAX_INFLIGHT_FRAMES, Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
    this.#maxQueued = Math.max(1, options.maxQueued ?? DEFAULT_MAX_QUEUED);
    this.#timeoutMs = timeoutOf(options, busTimeoutMs);
  }

  /** Messages held: batched or waiting for their confirm. */
  get queued(): number {
    return this.#held;
  }

  /**
   * Publish one message; resolves with its offset once the topic has committed it. Rejects with a
   * DovetailError (`message_too_large`, `invalid_field`, `closed`, `timeout`, `aborted`, ...).
   *
   * @example
   * const offset = await pub.send({ step: 3 }, { key: "agent-7", timeoutMs: 5000 });
   */
  send(data: T, options?: PublishOptions): Promise<number> {
    if (this.#closed) return Promise.reject(new DovetailError("closed", "the publisher is closed"));
    let timeoutMs: number;
    try {
      timeoutMs = timeoutOf(options, this.#timeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, this.#what()));
    return new Promise<number>((resolve, reject) => {
      const item: Item = {
        data,
        options,
        message: null,
        state: BLOCKED,
        frame: null,
        timeoutMs,
        since: Date.now(),
        resolve,
        reject,
        done: false,
        unlisten: null,
      };
      this.#unsettled += 1;
      if (signal) {
        const onAbort = () => this.#giveUp(item, abortError(signal, this.#what()));
        signal.addEventListener("abort", onAbort, { once: true });
        item.unlisten = () => signal.removeEventListener("abort", onAbort);
      }
      const deadline = this.#deadlineOf(item);
      if (deadline < this.#deadlineAt) this.#armDeadline(deadline);
      // Sends wait only while the publisher is full (#admitBlocked): none overtakes a waiting one.
      if (this.#held >= this.#maxQueued) this.#blocked.push(item);
      else this.#accept(item);
    });
  }

  /**
   * Resolves when the publisher has room (fewer than `maxQueued` messages held).
   *
   * @example
   * await pub.ready({ timeoutMs: 10_000 });
   */
  ready(options?: WaitOptions): Promise<void> {
    if (this.#held < this.#maxQueued) return Promise.resolve();
    return this.#waitFor(`room in the publisher for ${this.topic}`, options, this.#readyWaiters);
  }

  /**
   * Send the current batch now and wait until every message sent so far is confirmed or failed.
   * Each send settles within its own timeout, so this does too; `timeoutMs` / `signal` stop only
   * this wait (default: the publisher's `timeoutMs`), not the sends.
   *
   * @example
   * pub.send(a); pub.send(b);
   * await pub.flush(); // both are durable (or their send() promises rejected)
   */
  async flush(options?: WaitOptions): Promise<void> {
    this.#cut(true);
    if (this.#unsettled === 0) return;
    await this.#waitFor(`flush of ${this.topic}`, options, this.#idleWaiters);
  }

  /** Flush, then refuse further sends. */
  async close(options?: WaitOptions): Promise<void> {
    try {
      await this.flush(options);
    } finally {
      this.#closed = true;
    }
  }

  #what(): string {
    return `send to ${this.topic}`;
  }

  #waitFor(what: string, options: WaitOptions | undefined, waiters: (() => void)[]): Promise<void> {
    const merged = { signal: options?.signal, timeoutMs: options?.timeoutMs ?? this.#timeoutMs };
    let wake: (() => void) | null = null;
    return waitFor(what, merged, (signal) => {
      const done = new Promise<void>((resolve) => {
        wake = resolve;
        waiters.push(resolve);
      });
      signal.addEventListener("abort", () => {
        const i = wake ? waiters.indexOf(wake) : -1;
        if (i >= 0) waiters.splice(i, 1);
      });
      return done;
    });
  }

  /** Encode the message and put it in the batch. */
  #accept(item: Item): void {
    let message: EncodedMessage;
    try {
      message = encodeMessage(item.data, item.options);
    } catch (error) {
      this.#settle(item, error as DovetailError);
      return;
    }
    const maxMessageBytes = this.#limits()?.maxMessageBytes;
    if (maxMessageBytes !== undefined && message.size > maxMessageBytes) {
      this.#settle(item, new DovetailError("message_too_large", `message is ${message.size} bytes; the topic accepts at most ${maxMessageBytes}`));
      return;
    }
    item.message = message;
    item.data = undefined; // the encoded text is what is kept
    item.state = BATCHED;
    if (this.#batch.length > 0 && this.#batchBytes + message.size > this.#batchBytesLimit()) this.#cut(true);
    this.#batch.push(item);
    this.#batchBytes += message.size;
    this.#held += 1;
    if (this.#batch.length >= this.#batchLimit()) this.#cut(true);
    else this.#arm();
  }

  #limits() {
    try {
      return this.#pipe().limits;
    } catch {
      return null; // closed bus: the submit reports it
    }
  }

  #batchLimit(): number {
    return Math.min(this.#maxBatch, this.#limits()?.maxBatchMessages ?? Infinity);
  }

  #batchBytesLimit(): number {
    return Math.min(this.#maxBatchBytes, this.#limits()?.maxBatchBytes ?? Infinity);
  }

  #arm(): void {
    if (this.#timer || this.#microtask) return;
    if (this.#lingerMs === 0) {
      this.#microtask = true;
      queueMicrotask(() => {
        this.#microtask = false;
        this.#cut(true);
      });
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#cut(true);
    }, this.#lingerMs);
  }

  /** Hand batches to the pipe while this publisher has frames to spare. */
  #cut(force: boolean): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    while (this.#batch.length > 0 && this.#framesOut < this.#maxInFlight) {
      if (!force && this.#batch.length < this.#batchLimit()) break;
      const limit = this.#batchLimit();
      const bytesLimit = this.#batchBytesLimit();
      let n = 0;
      let bytes = 0;
      while (n < this.#batch.length && n < limit && (n === 0 || bytes + this.#batch[n]!.message!.size <= bytesLimit)) {
        bytes += this.#batch[n]!.message!.size;
        n++;
      }
      const items = this.#batch.splice(0, n);
      this.#batchBytes -= bytes;
      this.#framesOut += 1;
      const json = items.map((i) => i.message!.json).join(",");
      let pending: PendingFrame;
      try {
        pending = this.#pipe().enqueue(json, items.length);
      } catch (error) {
        pending = { result: Promise.reject(error), cancel: () => false }; // the bus was closed under us
      }
      const frame: Frame = { pending, waiting: items.length };
      for (const item of items) {
        item.state = SENT;
        item.frame = frame;
        this.#sent.add(item);
      }
      pending.result
        .then(
          (r) => {
            this.#progressAt = Date.now();
            for (let i = 0; i < items.length; i++) this.#settle(items[i]!, null, r.offset + i);
          },
          (e: DovetailError) => {
            if (frame.waiting > 0) this.#progressAt = Date.now(); // an answer, not our own withdrawal
            for (const item of items) this.#settle(item, e);
          },
        )
        .finally(() => {
          for (const item of items) this.#sent.delete(item);
          this.#framesOut -= 1;
          this.#held -= items.length;
          this.#admitBlocked();
          // Messages that gathered while frames were out leave now, as one batch.
          this.#cut(true);
        });
    }
    if (this.#batch.length > 0 && this.#framesOut < this.#maxInFlight) this.#arm();
  }

  /**
   * Take waiting sends in, oldest first, while there is room. After it, nothing waits or the
   * publisher is full; `#held` drops only right before a call to it. So a send that finds room
   * never overtakes a waiting one, and `send()` / `ready()` need only look at `#held`.
   */
  #admitBlocked(): void {
    const blocked = this.#blocked;
    while (this.#blockedHead < blocked.length && this.#held < this.#maxQueued) {
      const item = blocked[this.#blockedHead]!;
      blocked[this.#blockedHead++] = undefined;
      if (!item.done) this.#accept(item);
    }
    // Taken slots go once they are half the array: each waiting send is moved at most once more.
    if (this.#blockedHead * 2 >= blocked.length) this.#compactBlocked();
    if (this.#held < this.#maxQueued) {
      const waiters = this.#readyWaiters;
      this.#readyWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Settle one send: with its offset, or an error. Later outcomes of the same send are ignored. */
  #settle(item: Item, error: DovetailError | null, offset = -1): void {
    if (item.done) return;
    item.done = true;
    item.unlisten?.();
    item.unlisten = null;
    if (error) item.reject(error);
    else item.resolve(offset);
    this.#unsettled -= 1;
    if (this.#unsettled === 0) {
      // Nothing left to time out: no timer may keep the process alive.
      if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = null;
      this.#deadlineAt = Infinity;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * The caller stopped waiting for `item` (its deadline or its signal). Not yet in a frame: taken
   * out, never sent. In a frame: if no other send of the frame still waits, the frame is withdrawn
   * when the topic has not taken it.
   */
  #giveUp(item: Item, error: DovetailError): void {
    if (item.done) return;
    if (item.state === SENT) {
      this.#giveUpSent(item.frame!, [item], () => error);
      return;
    }
    // A send waiting for room stays in #blocked, settled, and is skipped when reached.
    if (item.state === BATCHED) {
      this.#batch.splice(this.#batch.indexOf(item), 1);
      this.#batchBytes -= item.message!.size;
      this.#held -= 1;
    }
    this.#settle(item, withNote(error, "it was never sent"));
    this.#admitBlocked(); // a waiting ready() may have room now
  }

  /** Stop waiting for `items` of `frame` together (they expired in one sweep): the frame is withdrawn if no send of it still waits. */
  #giveUpSent(frame: Frame, items: Item[], errorFor: (item: Item) => DovetailError): void {
    frame.waiting -= items.length;
    const withdrawn = frame.waiting === 0 && frame.pending.cancel(new DovetailError("closed", "withdrawn")); // its sends are settled below
    for (const item of items) this.#settle(item, withNote(errorFor(item), withdrawn ? "it was never sent" : "it was sent and may still be stored"));
  }

  /** Drop the taken slots of `#blocked`; returns the sends still waiting (some may be settled). */
  #compactBlocked(): Item[] {
    this.#blocked.splice(0, this.#blockedHead);
    this.#blockedHead = 0;
    return this.#blocked as Item[];
  }

  /** When `item` times out unless a confirm comes first (Infinity: never). */
  #deadlineOf(item: Item): number {
    return Math.max(item.since, this.#progressAt) + item.timeoutMs;
  }

  #armDeadline(at: number): void {
    if (this.#deadlineTimer) clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = setTimeout(() => this.#sweep(), Math.max(0, at - Date.now()));
  }

  /** Give up every send past its deadline, then wait for the next deadline. */
  #sweep(): void {
    this.#deadlineTimer = null;
    this.#deadlineAt = Infinity;
    const now = Date.now();
    const late = (item: Item) => !item.done && this.#deadlineOf(item) <= now;
    const expire = (item: Item) => this.#settle(item, withNote(timeoutError(this.#what(), item.timeoutMs), "it was never sent"));
    // Not yet in a frame: taken out in one pass each (a stalled connection can leave thousands).
    const blocked = this.#compactBlocked().filter(late);
    if (blocked.length > 0) this.#blocked = this.#blocked.filter((item) => !late(item!));
    const batched = this.#batch.filter(late);
    if (batched.length > 0) {
      this.#batch = this.#batch.filter((item) => !late(item));
      for (const item of batched) this.#batchBytes -= item.message!.size;
      this.#held -= batched.length;
    }
    for (const item of [...blocked, ...batched]) expire(item);
    const lateByFrame = new Map<Frame, Item[]>();
    for (const item of this.#sent) if (late(item)) lateByFrame.set(item.frame!, [...(lateByFrame.get(item.frame!) ?? []), item]);
    for (const [frame, items] of lateByFrame) this.#giveUpSent(frame, items, (item) => timeoutError(this.#what(), item.timeoutMs));
    if (blocked.length + batched.length > 0) this.#admitBlocked();
    let next = Infinity;
    for (const list of [this.#compactBlocked(), this.#batch, this.#sent])
      for (const item of list) if (!item.done) next = Math.min(next, this.#deadlineOf(item));
    if (next < Infinity) this.#armDeadline(next);
  }
}

function withNote(error: DovetailError, note: string): DovetailError {
  return new DovetailError(error.code, `${error.message}; ${note}`, error.details, { cause: error.cause });
}
