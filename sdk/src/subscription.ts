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
 *   order.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { Link, type LinkConfig, type LinkOwner } from "./link.ts";
import { decodeMessage, type Message } from "./message.ts";
import { encodeClientFrame, type DeliveredMessage, type ServerFrame, type SubscribeFrom, type WelcomeFrame } from "../../protocol/frames.ts";

export interface SubscribeOptions {
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
  /** Next offset expected from the topic; null until the first `subscribed`. */
  #next: number | null = null;
  /** Credit the topic still holds on the current socket. */
  #outstanding = 0;
  #subscribeId = 0;
  #error: DovetailError | null = null;
  #done = false;
  #wake: (() => void) | null = null;
  #onEnd: () => void;

  /** @internal use `bus.subscribe()` */
  constructor(topic: string, config: Omit<LinkConfig, "role">, options: SubscribeOptions, onEnd: () => void) {
    this.topic = topic;
    this.#from = wireFrom(options.from);
    this.#capacity = Math.max(1, Math.min(options.buffer ?? DEFAULT_BUFFER, 1_000_000));
    this.#onEnd = onEnd;
    this.#link = new Link({ ...config, role: "subscribe" }, this);
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
        return { value: decodeMessage(m) as Message<T>, done: false };
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
    this.#link.close();
    this.#wake?.();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#buffer = [];
    this.#head = 0;
    this.#link.close();
    this.#onEnd();
    this.#wake?.();
  }

  // -- LinkOwner ------------------------------------------------------------------------------

  onReady(_welcome: WelcomeFrame): void {
    const buffered = this.#buffer.length - this.#head;
    this.#outstanding = Math.max(0, this.#capacity - buffered);
    this.#subscribeId += 1;
    this.#link.send(encodeClientFrame({ type: "subscribe", id: this.#subscribeId, from: this.#next ?? this.#from, credit: this.#outstanding }));
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    switch (frame.type) {
      case "subscribed":
        if (frame.id !== this.#subscribeId) return;
        if (this.#next === null) this.#next = frame.next;
        else if (frame.next !== this.#next) this.#link.reset(`resubscribed at ${frame.next}, expected ${this.#next}`);
        return;
      case "messages": {
        let added = 0;
        for (const m of frame.messages) {
          this.#outstanding = Math.max(0, this.#outstanding - 1);
          if (this.#next === null || m.offset < this.#next) continue; // already have it
          if (m.offset > this.#next) {
            // A hole: never expected from the topic, so do not guess; resume from what we have.
            this.#link.reset(`offset ${m.offset} arrived while ${this.#next} was expected`);
            break;
          }
          this.#buffer.push(m);
          this.#next += 1;
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

  onDown(): void {
    this.#outstanding = 0;
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
