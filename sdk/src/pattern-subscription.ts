/**
 * PatternSubscription: `bus.subscribe("agents.*.events")`, the messages of every topic a pattern
 * matches, on one socket (docs/patterns.md, protocol/patterns.ts). Loaded with a dynamic import
 * the first time a pattern is subscribed to, and handed the SDK pieces it runs with, so it
 * imports no code of its own (the main bundle stays small, decision 025).
 *
 * - Each message carries its `topic` and `offset`. Per topic: each offset once, in order. Across
 *   topics: no order is promised.
 * - Resume: the subscription keeps, per topic, the offset after the last message it received; after
 *   a reconnect it sends them back with the start time the bus gave it, so every topic continues
 *   where it left off and topics without a cursor start as they would have at the start.
 * - Flow control: as for one topic, `buffer` messages at most, over all topics.
 */
import type { DovetailError } from "../../protocol/errors.ts";
import type { DeliveredMessage, ServerFrame, SubscribeFrom, WelcomeFrame } from "../../protocol/frames.ts";
import type { MatchingFrame, PatternFrom, PatternWelcomeFrame, UnmatchedFrame } from "../../protocol/patterns.ts";
import type { Link, LinkConfig, LinkOwner } from "./link.ts";
import type { decodeMessage, Message } from "./message.ts";
import type { conform } from "./standard-schema.ts";
import type { SubscribeOptions } from "./subscription.ts";

/** A message of a pattern subscription: a topic's message, with the topic's name. */
export interface PatternMessage<T = unknown> extends Message<T> {
  topic: string;
}

/** What the session is handed instead of importing it (decision 025). */
export interface PatternDeps {
  Link: typeof Link;
  DovetailError: typeof DovetailError;
  decodeMessage: typeof decodeMessage;
  conform: typeof conform;
  wireFrom: (from: SubscribeOptions["from"]) => SubscribeFrom;
}

export class PatternSession<T = unknown> implements AsyncIterableIterator<PatternMessage<T>>, LinkOwner {
  readonly pattern: string;
  readonly #link: Link;
  readonly #deps: PatternDeps;
  readonly #options: SubscribeOptions<T>;
  readonly #from: PatternFrom;
  readonly #capacity: number;
  #buffer: { topic: string; m: DeliveredMessage }[] = [];
  #head = 0;
  /** Per topic, the offset after the last message received. */
  readonly #cursors = new Map<string, number>();
  /** The bus's start time for this subscription (from the first `matching`). */
  #startedAt: number | null = null;
  #outstanding = 0;
  #subscribeId = 0;
  #error: DovetailError | null = null;
  #done = false;
  #wake: (() => void) | null = null;
  readonly #onEnd: () => void;
  #establishTimer: ReturnType<typeof setTimeout> | null = null;
  #lastError: DovetailError | null = null;
  #unlisten: (() => void) | null = null;

  /** @internal made by `bus.subscribe()` for a pattern */
  constructor(pattern: string, config: Omit<LinkConfig, "role">, options: SubscribeOptions<T>, onEnd: () => void, timeoutMs: number, deps: PatternDeps) {
    this.pattern = pattern;
    this.#deps = deps;
    this.#options = options;
    this.#onEnd = onEnd;
    const from = deps.wireFrom(options.from);
    if (typeof from === "number")
      throw new deps.DovetailError("invalid_field", "from: a pattern subscription starts at earliest, latest or a time, not an offset");
    this.#from = from;
    this.#capacity = Math.max(1, Math.min(options.buffer ?? 1000, 1_000_000));
    this.#link = new deps.Link({ ...config, role: "subscribe" }, this);
    const signal = options.signal;
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
        const cause = this.#lastError ?? undefined;
        this.fail(new deps.DovetailError("timeout", `subscribing to ${pattern} took longer than ${timeoutMs} ms`, {}, cause ? { cause } : {}));
      }, timeoutMs);
    }
    this.#link.start();
  }

  /** Per topic, the offset of the next message this subscription will receive. */
  get cursors(): ReadonlyMap<string, number> {
    return this.#cursors;
  }

  get buffered(): number {
    return this.#buffer.length - this.#head;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<PatternMessage<T>>> {
    for (;;) {
      if (this.#head < this.#buffer.length) {
        const { topic, m } = this.#buffer[this.#head]!;
        this.#head += 1;
        if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
          this.#buffer = this.#buffer.slice(this.#head);
          this.#head = 0;
        }
        this.#grant();
        const message = { ...this.#deps.decodeMessage(m), topic } as PatternMessage<T>;
        const { schema, onInvalid } = this.#options;
        if (!schema) return { value: message, done: false };
        try {
          message.data = await this.#deps.conform(schema, message.data, message.offset, topic);
        } catch (error) {
          if (!onInvalid || (error as DovetailError).code !== "schema_mismatch") throw error;
          await onInvalid(error as DovetailError, message);
          continue;
        }
        return { value: message, done: false };
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

  async return(): Promise<IteratorResult<PatternMessage<T>>> {
    this.#finish();
    return { value: undefined, done: true };
  }

  close(): void {
    this.#finish();
  }

  /** @internal end with an error; what is buffered is still yielded first. */
  fail(error: DovetailError): void {
    if (this.#done) return;
    this.#error ??= error;
    this.#stopWaiting();
    this.#link.close();
    this.#wake?.();
  }

  #abort(signal: AbortSignal): void {
    this.#buffer = [];
    this.#head = 0;
    this.fail(new this.#deps.DovetailError("aborted", `subscription to ${this.pattern} aborted`, {}, { cause: signal.reason }));
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

  onReady(_welcome: WelcomeFrame | PatternWelcomeFrame): void {
    this.#outstanding = Math.max(0, this.#capacity - this.buffered);
    this.#subscribeId += 1;
    const frame: Record<string, unknown> = { type: "subscribe", id: this.#subscribeId, from: this.#from, credit: this.#outstanding };
    if (this.#startedAt !== null) {
      frame.startedAt = this.#startedAt;
      frame.cursors = Object.fromEntries(this.#cursors);
    }
    this.#link.send(JSON.stringify(frame));
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame | PatternWelcomeFrame>): void {
    switch (frame.type) {
      case "matching": {
        const f = frame as MatchingFrame;
        if (f.id !== this.#subscribeId || typeof f.startedAt !== "number") return;
        this.#stopEstablishing();
        this.#startedAt ??= f.startedAt;
        return;
      }
      case "messages": {
        const topic = frame.topic;
        if (typeof topic !== "string") return;
        let added = 0;
        for (const m of frame.messages) {
          this.#outstanding = Math.max(0, this.#outstanding - 1);
          const next = this.#cursors.get(topic);
          if (next !== undefined && m.offset < next) continue; // already have it
          if (next !== undefined && m.offset > next && !frame.skips) {
            this.#link.reset(`${topic}: offset ${m.offset} arrived while ${next} was expected`);
            break;
          }
          this.#buffer.push({ topic, m });
          this.#cursors.set(topic, m.offset + 1);
          added++;
        }
        if (added > 0) this.#wake?.();
        return;
      }
      case "unmatched":
        // Deleted (or refused): if it comes back, it starts over at its first message.
        this.#cursors.delete((frame as UnmatchedFrame).topic);
        return;
      case "error":
        if (frame.id === this.#subscribeId || frame.id === undefined) {
          const error = this.#deps.DovetailError.fromWire(frame);
          if (error.code !== "rate_limited") this.fail(error);
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

  #stopEstablishing(): void {
    if (this.#establishTimer) clearTimeout(this.#establishTimer);
    this.#establishTimer = null;
  }

  /** Give back credit for what the application took, in steps of a quarter of the buffer. */
  #grant(): void {
    const room = this.#capacity - this.buffered - this.#outstanding;
    if (room <= 0 || room < Math.max(1, Math.floor(this.#capacity / 4))) return;
    if (this.#link.send(`{"type":"credit","messages":${room}}`)) this.#outstanding += room;
  }
}
