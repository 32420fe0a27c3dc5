/**
 * Subscription: one topic subscription as an async iterator, on its own socket (the protocol
 * allows one subscription per socket).
 *
 * - Flow control: the buffer holds at most `buffer` messages; the topic may send only what the
 *   buffer has room for (credit), and credit is granted as the application takes messages, so a
 *   slow consumer slows only itself (docs/decisions/005-flow-control.md).
 * - Resume: after a reconnect the subscription starts again at the offset after the last one it
 *   received; buffered messages are kept, anything already received is skipped, and a hole in
 *   the offsets is treated as a broken connection. The application sees each offset once, in
 *   order. A credential that expires under a live subscription is one such reconnect when the
 *   token is a function (link.ts).
 * - Waiting: `timeoutMs` bounds how long the subscription may take to be established (the topic's
 *   `subscribed` answer); once established, losing the connection is the reconnect policy's
 *   business (backoff.ts), since waiting for messages is what a subscription is for. `signal`
 *   ends it: `next()` rejects with `aborted`.
 * - Schemas: with `schema`, each message's data is validated as it is taken. One that does not
 *   fit makes `next()` reject with `schema_mismatch` (its `offset` and `issues`); the subscription
 *   stays open past it, so iterating again continues with the next message. With `onInvalid`,
 *   such messages go to it instead and are skipped.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { Link, type LinkConfig, type LinkOwner } from "./link.ts";
import { decodeMessage, type Message } from "./message.ts";
import { conform, type StandardSchema } from "./standard-schema.ts";
import { encodeClientFrame, type DeliveredMessage, type ServerFrame, type SubscribeFrom, type WelcomeFrame } from "../../protocol/frames.ts";
import { abortError, DEFAULT_TIMEOUT_MS, timeoutError, timeoutOf } from "./wait.ts";

export interface SubscribeOptions<T = unknown> {
  /**
   * Where to start: an offset, `"earliest"` (the first message still stored), `"latest"` (only
   * messages published from now on; the default), or a `Date` / `{ time: ms }` (the first message
   * stored at or after it).
   */
  from?: number | "earliest" | "latest" | Date | { time: number };
  /** Most messages buffered ahead of the application (and credit granted). Default 1000. */
  buffer?: number;
  /**
   * Let the topic hibernate while this subscription is idle (default true). `false` opens a plain
   * socket: lower latency under load and no per-frame dispatch cost on the server, but the topic
   * stays in memory while the subscription lives (docs/decisions/006-socket-modes.md).
   */
  hibernate?: boolean;
  /** Ends the subscription: a waiting `next()` rejects with `aborted` (buffered messages are dropped). */
  signal?: AbortSignal | undefined;
  /**
   * Longest wait for the subscription to be established (the topic answered `subscribe`), from
   * `bus.subscribe()`; then `next()` rejects with `timeout`. Default: the bus's `timeoutMs`
   * (30 s). `Infinity` waits as long as the reconnect policy allows.
   */
  timeoutMs?: number | undefined;
  /**
   * A Standard Schema (zod 4, Valibot, ArkType, ...) each message's `data` must fit; `msg.data` is
   * the schema's output. A message that does not fit: see `onInvalid`.
   */
  schema?: StandardSchema<unknown, T> | undefined;
  /**
   * Where messages that do not fit `schema` go. Without it (the default) `next()` rejects with a
   * `schema_mismatch` DovetailError (`details.offset`, `details.issues`) and iterating again
   * continues after that message. With it, the message and the error are handed to it (awaited)
   * and skipped.
   */
  onInvalid?: ((error: DovetailError, message: Message) => void | Promise<void>) | undefined;
}

export const DEFAULT_BUFFER = 1000;

export function wireFrom(from: SubscribeOptions["from"]): SubscribeFrom {
  if (from === undefined) return "latest";
  if (from instanceof Date) return { time: from.getTime() };
  if (typeof from === "number" || from === "earliest" || from === "latest") return from;
  if (typeof from === "object" && from !== null && typeof from.time === "number") return { time: from.time };
  throw new DovetailError("invalid_field", 'from: expected an offset, "earliest", "latest", a Date or { time }');
}

/**
 * The async iterator `bus.subscribe()` returns. Breaking out of a `for await` loop (or calling
 * `close()`) ends the subscription.
 *
 * @example
 * for await (const msg of bus.subscribe("agents.events", { from: "earliest" })) {
 *   console.log(msg.offset, msg.data);
 * }
 */
export class Subscription<T = unknown> implements AsyncIterableIterator<Message<T>>, LinkOwner {
  readonly topic: string;
  readonly #link: Link;
  readonly #from: SubscribeFrom;
  readonly #capacity: number;
  /** Messages received and not yet taken (ring-free: an array and a read index). */
  #buffer: DeliveredMessage[] = [];
  #head = 0;
  /** A `memory` topic: its offsets may jump forward (protocol/durability.ts). */
  #skips = false;
  /** Next offset expected from the topic; null until the first `subscribed`. */
  #next: number | null = null;
  /** Credit the topic still holds on the current socket. */
  #outstanding = 0;
  #subscribeId = 0;
  #error: DovetailError | null = null;
  #done = false;
  #wake: (() => void) | null = null;
  #onEnd: () => void;
  readonly #schema: StandardSchema<unknown, T> | undefined;
  readonly #onInvalid: SubscribeOptions<T>["onInvalid"];
  /** Until the first `subscribed`: gives up after `timeoutMs`. */
  #establishTimer: ReturnType<typeof setTimeout> | null = null;
  /** Why the last attempt failed, for the timeout's message. */
  #lastError: DovetailError | null = null;
  #unlisten: (() => void) | null = null;

  /** @internal use `bus.subscribe()` */
  constructor(topic: string, config: Omit<LinkConfig, "role">, options: SubscribeOptions<T>, onEnd: () => void, busTimeoutMs: number = DEFAULT_TIMEOUT_MS) {
    this.topic = topic;
    this.#from = wireFrom(options.from);
    this.#capacity = Math.max(1, Math.min(options.buffer ?? DEFAULT_BUFFER, 1_000_000));
    this.#onEnd = onEnd;
    this.#schema = options.schema;
    this.#onInvalid = options.onInvalid;
    const timeoutMs = timeoutOf(options, busTimeoutMs);
    const signal = options.signal;
    this.#link = new Link({ ...config, role: "subscribe" }, this);
    if (signal?.aborted) {
      this.#abort(signal);
      return;
    }
    if (signal) {
      const onAbort = () => this.#abort(signal);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unlisten = () => signal.removeEventListener("abort", onAbort);
    }
    if (timeoutMs !== Infinity) {
      this.#establishTimer = setTimeout(() => {
        this.#establishTimer = null;
        this.fail(timeoutError(`subscribing to ${topic}`, timeoutMs, this.#lastError ?? undefined));
      }, timeoutMs);
    }
    this.#link.start();
  }

  /** Offset of the next message this subscription will yield (null before the topic answered). */
  get position(): number | null {
    const buffered = this.#buffer.length - this.#head;
    if (buffered > 0) return this.#buffer[this.#head]!.offset;
    return this.#next;
  }

  /** Messages received and waiting for the application (never more than `buffer`). */
  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Message<T>>> {
    for (;;) {
      if (this.#head < this.#buffer.length) {
        const m = this.#buffer[this.#head]!;
        this.#head += 1;
        if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
          this.#buffer = this.#buffer.slice(this.#head);
          this.#head = 0;
        }
        this.#grant();
        const message = decodeMessage(m);
        if (!this.#schema) return { value: message as Message<T>, done: false };
        let data: T;
        try {
          data = await conform(this.#schema, message.data, message.offset, this.topic);
        } catch (error) {
          // The message is taken either way: iterating again continues after it.
          if (!this.#onInvalid || !(error instanceof DovetailError) || error.code !== "schema_mismatch") throw error;
          await this.#onInvalid(error, message);
          continue;
        }
        return { value: { ...message, data }, done: false };
      }
      if (this.#error) {
        const error = this.#error;
        this.#finish();
        throw error;
      }
      if (this.#done) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  async return(): Promise<IteratorResult<Message<T>>> {
    this.#finish();
    return { value: undefined, done: true };
  }

  /** End the subscription; a waiting `next()` returns done. */
  close(): void {
    this.#finish();
  }

  /** @internal end with an error (bus closed, link failed). Buffered messages are still yielded first. */
  fail(error: DovetailError): void {
    if (this.#done) return;
    this.#error ??= error;
    this.#stopWaiting();
    this.#link.close();
    this.#wake?.();
  }

  /** The caller's signal fired: end now, without yielding what is buffered. */
  #abort(signal: AbortSignal): void {
    this.#buffer = [];
    this.#head = 0;
    this.fail(abortError(signal, `subscription to ${this.topic}`));
  }

  #stopWaiting(): void {
    if (this.#establishTimer) clearTimeout(this.#establishTimer);
    this.#establishTimer = null;
    this.#unlisten?.();
    this.#unlisten = null;
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#buffer = [];
    this.#head = 0;
    this.#stopWaiting();
    this.#link.close();
    this.#onEnd();
    this.#wake?.();
  }

  // -- LinkOwner ------------------------------------------------------------------------------

  onReady(welcome: WelcomeFrame): void {
    this.#skips = welcome.durability === "memory";
    const buffered = this.#buffer.length - this.#head;
    this.#outstanding = Math.max(0, this.#capacity - buffered);
    this.#subscribeId += 1;
    this.#link.send(encodeClientFrame({ type: "subscribe", id: this.#subscribeId, from: this.#next ?? this.#from, credit: this.#outstanding }));
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    switch (frame.type) {
      case "subscribed":
        if (frame.id !== this.#subscribeId) return;
        if (this.#establishTimer) clearTimeout(this.#establishTimer);
        this.#establishTimer = null;
        // A memory topic moves a cursor it no longer holds forward (never back).
        if (this.#next === null || this.#skips) this.#next = frame.next;
        else if (frame.next !== this.#next) this.#link.reset(`resubscribed at ${frame.next}, expected ${this.#next}`);
        return;
      case "messages": {
        let added = 0;
        for (const m of frame.messages) {
          this.#outstanding = Math.max(0, this.#outstanding - 1);
          if (this.#next === null || m.offset < this.#next) continue; // already have it
          if (m.offset > this.#next && !this.#skips) {
            // A hole: never expected from the topic, so do not guess; resume from what we have.
            this.#link.reset(`offset ${m.offset} arrived while ${this.#next} was expected`);
            break;
          }
          this.#buffer.push(m);
          this.#next = m.offset + 1;
          added++;
        }
        if (added > 0) this.#wake?.();
        return;
      }
      case "error":
        if (frame.id === this.#subscribeId || frame.id === undefined) {
          const error = DovetailError.fromWire(frame);
          if (error.code === "rate_limited") return; // a warning; the socket stays
          this.fail(error);
        }
        return;
      default:
        return;
    }
  }

  onDown(error: DovetailError): void {
    this.#outstanding = 0;
    this.#lastError = error;
  }

  onFailed(error: DovetailError): void {
    this.fail(error);
  }

  /** Give back credit for what the application took, in steps of a quarter of the buffer. */
  #grant(): void {
    const buffered = this.#buffer.length - this.#head;
    const room = this.#capacity - buffered - this.#outstanding;
    if (room <= 0 || room < Math.max(1, Math.floor(this.#capacity / 4))) return;
    if (this.#link.send(encodeClientFrame({ type: "credit", messages: room }))) this.#outstanding += room;
  }
}
