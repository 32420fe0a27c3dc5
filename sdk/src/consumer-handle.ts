/**
 * Consumer: what `bus.consume()` returns. A thin handle: the consumer itself (consumer.ts,
 * `ConsumerSession`) is loaded with a dynamic import on first use, and is handed the SDK pieces
 * it runs with, so it imports no code of its own. A browser app that only publishes and
 * subscribes therefore does not carry it (bundlers put it in a chunk of its own; the package test
 * measures the main bundle, decision 025). Calls made before it has loaded wait for it.
 */
import { DovetailError } from "../../protocol/errors.ts";
import type { ConsumeOptions, ConsumerSession, Job, JobHandler } from "./consumer.ts";
import { Link, type LinkConfig } from "./link.ts";
import { decodeMessage } from "./message.ts";

/**
 * Membership of a consumer group as an async iterator of jobs (docs/groups.md).
 *
 * @example
 * const consumer = bus.consume("jobs", "resizers", { create: { start: "earliest" } });
 * for await (const job of consumer) { await resize(job.data); await job.ack(); }
 */
export class Consumer<T = unknown> implements AsyncIterableIterator<Job<T>> {
  readonly topic: string;
  readonly group: string;
  /** Handler form (`bus.consume(topic, group, options, handler)`): resolves when the consumer ends, rejects with what ended it. */
  done: Promise<void> | null = null;
  readonly #session: Promise<ConsumerSession<T>>;
  #loaded: ConsumerSession<T> | null = null;
  #closed = false;

  /** @internal use `bus.consume()` */
  constructor(topic: string, group: string, config: Omit<LinkConfig, "role">, options: ConsumeOptions, onEnd: () => void) {
    this.topic = topic;
    this.group = group;
    this.#session = import("./consumer.ts").then(({ ConsumerSession }) => {
      const session = new ConsumerSession<T>(topic, group, config, options, onEnd, { Link, DovetailError, decodeMessage });
      this.#loaded = session;
      if (this.#closed) session.close();
      return session;
    });
  }

  /** The member id the topic gave this consumer on its current socket (null while connecting). */
  get member(): string | null {
    return this.#loaded?.member ?? null;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Job<T>>> {
    return (await this.#session).next();
  }

  async return(): Promise<IteratorResult<Job<T>>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Leave the group: jobs received and not yet taken go back uncounted; jobs taken and not settled go to other members. */
  close(): void {
    this.#closed = true;
    this.#loaded?.close();
  }

  /** Run `handler` for every job until the consumer ends: ack on return, nack (with the error's message) on throw. */
  async run(handler: JobHandler<T>): Promise<void> {
    return (await this.#session).run(handler);
  }
}
