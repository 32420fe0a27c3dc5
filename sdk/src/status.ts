/** Connection events, as `bus.status()` yields them. */
import type { DovetailError } from "../../protocol/errors.ts";

export type StatusEvent =
  /** A socket for `topic` is being opened (`attempt` 0 is the first try). */
  | { type: "connecting"; topic: string; role: "publish" | "subscribe" | "consume"; attempt: number }
  /** The socket is open and the topic said welcome. */
  | { type: "connected"; topic: string; role: "publish" | "subscribe" | "consume" }
  /** The socket went away; the SDK will retry unless the error is final. */
  | { type: "disconnected"; topic: string; role: "publish" | "subscribe" | "consume"; error: DovetailError }
  /** Waiting `delayMs` before attempt `attempt`. */
  | { type: "reconnecting"; topic: string; role: "publish" | "subscribe" | "consume"; attempt: number; delayMs: number }
  /**
   * The connection gave up for good; operations on it fail with `error`: the refusal itself
   * (`unauthorized`, `forbidden`, `not_found`, `topic_deleted` for a subscription, ...), or `closed`
   * when the reconnect policy's `maxAttempts` / `maxElapsedMs` ran out (the last error as `cause`).
   */
  | { type: "failed"; topic: string; role: "publish" | "subscribe" | "consume"; error: DovetailError }
  /** `bus.close()` finished; the iterable ends after this event. */
  | { type: "closed" };

/** Most events buffered per `status()` reader; older ones are dropped if it stops reading. */
export const STATUS_BUFFER_EVENTS = 1000;

/** Fans status events out to every open `status()` iterable. */
export class StatusHub {
  readonly #readers = new Set<{ queue: StatusEvent[]; wake: (() => void) | null }>();
  #ended = false;

  emit(event: StatusEvent): void {
    for (const r of this.#readers) {
      r.queue.push(event);
      if (r.queue.length > STATUS_BUFFER_EVENTS) r.queue.shift();
      r.wake?.();
    }
    if (event.type === "closed") this.#ended = true;
  }

  iterate(): AsyncIterableIterator<StatusEvent> {
    const reader: { queue: StatusEvent[]; wake: (() => void) | null } = { queue: [], wake: null };
    if (this.#ended) reader.queue.push({ type: "closed" });
    this.#readers.add(reader);
    const readers = this.#readers;
    const iterator: AsyncIterableIterator<StatusEvent> = {
      async next(): Promise<IteratorResult<StatusEvent>> {
        for (;;) {
          const event = reader.queue.shift();
          if (event) {
            if (event.type === "closed") readers.delete(reader);
            return { value: event, done: false };
          }
          if (!readers.has(reader)) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (reader.wake = resolve));
          reader.wake = null;
        }
      },
      async return(): Promise<IteratorResult<StatusEvent>> {
        readers.delete(reader);
        reader.queue.length = 0;
        reader.wake?.();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
