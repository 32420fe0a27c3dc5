/**
 * TopicMetrics: what a topic counts for `GET /metrics` (docs/observability.md), as a Topic
 * module. Counts live in memory, in one {@link TopicCounters} that the Directory reporter
 * (objects/directory-reporter.ts) takes and resets at each report, at most every
 * REPORT_INTERVAL_MS: no storage write and no allocation per message (each count is a field
 * increment; a duration is one bucket increment).
 *
 * The other parts of the topic tell it what happened through small observer interfaces: the
 * commit queue (commits and their durations), the fan-out and the consumer groups (deliveries,
 * pauses, failures, dead letters) and the connection policy (refusals by the topic's limits).
 *
 * @example
 * const metrics = new TopicMetrics({ changed: () => reporter.soon() });
 * metrics.delivered(10, 3); // ten messages sent, the oldest committed 3 ms ago
 */
import { emptyCounters, observe, type DeliveryFailure, type TopicCounters } from "../protocol/metrics.ts";

/** What the commit queue tells: a commit became durable; a publish of it was answered. */
export interface CommitObserver {
  committed(flushedAt: number, durableAt: number): void;
  published(submittedAt: number, durableAt: number): void;
}

/** What deliveries tell (fan-out and consumer groups). */
export interface DeliveryObserver {
  /** `count` messages were sent; the oldest was committed `ageMs` ago. */
  delivered(count: number, ageMs: number): void;
  /** A subscriber ran out of credit with messages left to deliver. */
  paused(): void;
  failed(reason: DeliveryFailure): void;
  /** A dead letter was stored in the dead-letter topic. */
  deadLettered(): void;
}

export interface TopicMetricsHost {
  /** Called on the first count after a report, so the reporter plans the next one. */
  changed(): void;
}

/**
 * A TopicModule (objects/topic-module.ts) by shape: it imports nothing of the runtime's, so
 * bench/probe/metrics-cost.ts can time it in plain Node.
 */
export class TopicMetrics implements CommitObserver, DeliveryObserver {
  readonly #host: TopicMetricsHost;
  #counters: TopicCounters = emptyCounters();
  #dirty = false;

  constructor(host: TopicMetricsHost) {
    this.#host = host;
  }

  /** The counts since the last call, and a fresh start. */
  take(): TopicCounters {
    const taken = this.#counters;
    this.#counters = emptyCounters();
    this.#dirty = false;
    return taken;
  }

  /** After each group commit (a CommittedBatch, objects/commit-queue.ts). */
  onCommit(batch: { readonly bodies: readonly string[] }): void {
    this.#counters.published += batch.bodies.length;
    this.#counters.commits++;
    this.#mark();
  }

  committed(flushedAt: number, durableAt: number): void {
    observe(this.#counters.commitDuration, (durableAt - flushedAt) / 1000);
    this.#mark(); // durable after the report its commit may have caused
  }

  published(submittedAt: number, durableAt: number): void {
    observe(this.#counters.publishDuration, (durableAt - submittedAt) / 1000);
  }

  delivered(count: number, ageMs: number): void {
    this.#counters.delivered += count;
    observe(this.#counters.deliveryDuration, ageMs / 1000, count);
    this.#mark();
  }

  paused(): void {
    this.#counters.backpressure++;
    this.#mark();
  }

  failed(reason: DeliveryFailure): void {
    this.#counters.failures[reason] = (this.#counters.failures[reason] ?? 0) + 1;
    this.#mark();
  }

  deadLettered(): void {
    this.#counters.dlq++;
    this.#mark();
  }

  /** A write or frame refused by one of the topic's own limits. */
  rateLimited(reason: string): void {
    this.#counters.rateLimited[reason] = (this.#counters.rateLimited[reason] ?? 0) + 1;
    this.#mark();
  }

  onSocketOpened(): void {
    this.#mark();
  }

  onSocketGone(): void {
    this.#mark();
  }

  #mark(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#host.changed();
  }
}
