/**
 * Publisher: batching on top of a topic's publish pipe, like Kafka's `linger.ms` / `batch.size`.
 * `send()` puts a message in the current batch; the batch leaves when it holds `maxBatch`
 * messages or `lingerMs` after its first message, and each `send()` resolves with its offset
 * once the topic has committed the frame.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { encodeMessage, type EncodedMessage, type PublishOptions } from "./message.ts";
import { MAX_INFLIGHT_FRAMES, type PublishPipe } from "./pipe.ts";

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
}

export const DEFAULT_LINGER_MS = 5;
export const DEFAULT_MAX_BATCH = 500;
export const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 8;
export const DEFAULT_MAX_QUEUED = 10_000;

interface Item {
  message: EncodedMessage;
  resolve: (offset: number) => void;
  reject: (e: DovetailError) => void;
}

interface Blocked {
  data: unknown;
  options: PublishOptions | undefined;
  resolve: (offset: number) => void;
  reject: (e: unknown) => void;
}

/**
 * A batching publisher for one topic, from `bus.publisher(topic, options)`.
 *
 * @example
 * const pub = bus.publisher("agents.events", { lingerMs: 5, maxBatch: 500 });
 * for (const e of events) pub.send(e).catch(console.error);
 * await pub.flush();
 */
export class Publisher {
  readonly topic: string;
  readonly #pipe: () => PublishPipe;
  readonly #lingerMs: number;
  readonly #maxBatch: number;
  readonly #maxBatchBytes: number;
  readonly #maxInFlight: number;
  readonly #maxQueued: number;
  #batch: Item[] = [];
  #batchBytes = 0;
  #held = 0;
  #framesOut = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #microtask = false;
  #blocked: Blocked[] = [];
  #readyWaiters: (() => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  #closed = false;

  /** @internal use `bus.publisher()` */
  constructor(topic: string, pipe: () => PublishPipe, options: PublisherOptions = {}) {
    this.topic = topic;
    this.#pipe = pipe;
    this.#lingerMs = Math.max(0, options.lingerMs ?? DEFAULT_LINGER_MS);
    this.#maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.#maxBatchBytes = Math.max(1, options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES);
    this.#maxInFlight = Math.min(MAX_INFLIGHT_FRAMES, Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT));
    this.#maxQueued = Math.max(1, options.maxQueued ?? DEFAULT_MAX_QUEUED);
  }

  /** Messages held: batched or waiting for their confirm. */
  get queued(): number {
    return this.#held;
  }

  /**
   * Publish one message; resolves with its offset once the topic has committed it. Rejects with a
   * DovetailError (`message_too_large`, `invalid_field`, `closed`, ...).
   *
   * @example
   * const offset = await pub.send({ step: 3 }, { key: "agent-7" });
   */
  send(data: unknown, options?: PublishOptions): Promise<number> {
    if (this.#closed) return Promise.reject(new DovetailError("closed", "the publisher is closed"));
    if (this.#held >= this.#maxQueued || this.#blocked.length > 0) {
      return new Promise<number>((resolve, reject) => this.#blocked.push({ data, options, resolve, reject }));
    }
    return new Promise<number>((resolve, reject) => this.#accept(data, options, resolve, reject));
  }

  /** Resolves when the publisher has room (fewer than `maxQueued` messages held). */
  ready(): Promise<void> {
    if (this.#held < this.#maxQueued && this.#blocked.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /**
   * Send the current batch now and wait until every message sent so far is confirmed or failed.
   *
   * @example
   * pub.send(a); pub.send(b);
   * await pub.flush(); // both are durable (or their send() promises rejected)
   */
  async flush(): Promise<void> {
    this.#cut(true);
    if (this.#held === 0 && this.#blocked.length === 0) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Flush, then refuse further sends. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  #accept(data: unknown, options: PublishOptions | undefined, resolve: (o: number) => void, reject: (e: DovetailError) => void): void {
    let message: EncodedMessage;
    try {
      message = encodeMessage(data, options);
    } catch (error) {
      reject(error as DovetailError);
      return;
    }
    const maxMessageBytes = this.#limits()?.maxMessageBytes;
    if (maxMessageBytes !== undefined && message.size > maxMessageBytes) {
      reject(new DovetailError("message_too_large", `message is ${message.size} bytes; the topic accepts at most ${maxMessageBytes}`));
      return;
    }
    if (this.#batch.length > 0 && this.#batchBytes + message.size > this.#batchBytesLimit()) this.#cut(true);
    this.#batch.push({ message, resolve, reject });
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
      while (n < this.#batch.length && n < limit && (n === 0 || bytes + this.#batch[n]!.message.size <= bytesLimit)) {
        bytes += this.#batch[n]!.message.size;
        n++;
      }
      const items = this.#batch.splice(0, n);
      this.#batchBytes -= bytes;
      this.#framesOut += 1;
      const json = items.map((i) => i.message.json).join(",");
      let submitted: Promise<{ offset: number }>;
      try {
        submitted = this.#pipe().submit(json, items.length);
      } catch (error) {
        submitted = Promise.reject(error); // the bus was closed under us
      }
      submitted
        .then(
          (r) => {
            for (let i = 0; i < items.length; i++) items[i]!.resolve(r.offset + i);
          },
          (e: DovetailError) => {
            for (const item of items) item.reject(e);
          },
        )
        .finally(() => {
          this.#framesOut -= 1;
          this.#held -= items.length;
          this.#admitBlocked();
          // Messages that gathered while frames were out leave now, as one batch.
          this.#cut(true);
          this.#settle();
        });
    }
    if (this.#batch.length > 0 && this.#framesOut < this.#maxInFlight) this.#arm();
  }

  #admitBlocked(): void {
    while (this.#blocked.length > 0 && this.#held < this.#maxQueued) {
      const b = this.#blocked.shift()!;
      this.#accept(b.data, b.options, b.resolve, b.reject);
    }
    if (this.#held < this.#maxQueued && this.#blocked.length === 0) {
      const waiters = this.#readyWaiters;
      this.#readyWaiters = [];
      for (const w of waiters) w();
    }
  }

  #settle(): void {
    if (this.#held > 0 || this.#blocked.length > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
