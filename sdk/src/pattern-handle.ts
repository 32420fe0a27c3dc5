/**
 * PatternSubscription: what `bus.subscribe()` returns for a pattern (`agents.*.events`,
 * `agents.>`; docs/patterns.md). A thin handle: the subscription itself (pattern-subscription.ts)
 * is loaded on first use and handed the SDK pieces it runs with, as the consumer is
 * (consumer-handle.ts), so apps that never subscribe to a pattern do not carry it (decision 025).
 */
import { DovetailError } from "../../protocol/errors.ts";
import { Link, type LinkConfig } from "./link.ts";
import { decodeMessage } from "./message.ts";
import type { PatternMessage, PatternSession } from "./pattern-subscription.ts";
import { conform } from "./standard-schema.ts";
import { wireFrom, type SubscribeOptions } from "./subscription.ts";

export type { PatternMessage };

/**
 * The messages of every topic a pattern matches, as an async iterator; each message names its
 * `topic`. Breaking out of the loop (or `close()`) ends it.
 *
 * @example
 * for await (const msg of bus.subscribe("agents.*.events")) console.log(msg.topic, msg.offset, msg.data);
 */
export class PatternSubscription<T = unknown> implements AsyncIterableIterator<PatternMessage<T>> {
  readonly pattern: string;
  readonly #session: Promise<PatternSession<T>>;

  /** @internal use `bus.subscribe()` */
  constructor(pattern: string, config: Omit<LinkConfig, "role">, options: SubscribeOptions<T>, onEnd: () => void, timeoutMs: number) {
    this.pattern = pattern;
    this.#session = import("./pattern-subscription.ts").then(
      ({ PatternSession }) => new PatternSession<T>(pattern, config, options, onEnd, timeoutMs, { Link, DovetailError, decodeMessage, conform, wireFrom }),
    );
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<PatternMessage<T>>> {
    return (await this.#session).next();
  }

  async return(): Promise<IteratorResult<PatternMessage<T>>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** End the subscription (once its code has loaded, at once if it has); a waiting iteration returns done. */
  close(): void {
    void this.#session.then((s) => s.close());
  }
}
