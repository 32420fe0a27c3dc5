/**
 * Retention as a Topic module: trims the log by age, count and bytes, and forgets idle
 * idempotent producers. It runs on the alarm:
 * - under a count or byte limit, {@link RETENTION_CHECK_MS} after a write;
 * - under an age limit, when the oldest message ages out, not on a fixed period: a topic whose
 *   messages are young is left alone and can hibernate (a 10 s period kept such topics in memory
 *   for good, since local workerd evicts an object after 10 s idle: docs/local-limits.md);
 * - a new setting is applied at once (`configure`).
 */
import type { Retention, TopicLog } from "./log.ts";
import { trimInSteps } from "./storage-guard.ts";
import type { TopicModule } from "./topic-module.ts";

/** How long after a write retention runs under a count or byte limit. */
export const RETENTION_CHECK_MS = 10_000;

export class RetentionModule implements TopicModule {
  readonly #log: TopicLog;
  readonly #commit: () => Promise<void>;
  /** Written to since retention last ran under a count or byte limit (so a limit may be exceeded). */
  #writtenAt: number | null = null;
  /** When the oldest message ages out; undefined: not looked up since it may have changed. */
  #agesOutAt: number | null | undefined;

  /** `commit` makes the writes so far durable (each trim step commits on its own: see trimInSteps). */
  constructor(log: TopicLog, commit: () => Promise<void>) {
    this.#log = log;
    this.#commit = commit;
  }

  onCommit(): void {
    if (!this.#log.hasRetention()) return; // none set, or a memory topic (its ring keeps its own bounds)
    const { maxMessages, maxBytes } = this.#log.retention;
    if ((maxMessages > 0 || maxBytes > 0) && this.#writtenAt === null) this.#writtenAt = Date.now();
    // The first message of an empty log starts the age clock.
    if (this.#agesOutAt === null) this.#agesOutAt = undefined;
  }

  nextDeadline(): number | null {
    let at = this.#writtenAt === null ? null : this.#writtenAt + RETENTION_CHECK_MS;
    const ages = this.#agesOut();
    if (ages !== null && (at === null || ages < at)) at = ages;
    return at;
  }

  #agesOut(): number | null {
    const log = this.#log;
    const { maxAgeMs } = log.retention;
    if (maxAgeMs <= 0 || !log.hasRetention() || log.head <= log.earliest) return null;
    if (this.#agesOutAt === undefined || this.#agesOutAt === null) {
      const oldest = log.timeOf(log.earliest);
      this.#agesOutAt = oldest === null ? null : oldest + maxAgeMs;
    }
    return this.#agesOutAt;
  }

  async onAlarm(now: number): Promise<void> {
    this.#writtenAt = null;
    this.#agesOutAt = undefined;
    // Deletes first, in steps: on a full storage the trim is what can still be written
    // (docs/architecture.md, "Full disk").
    await trimInSteps(this.#log, now, this.#commit);
    this.#log.expireProducers(now);
  }

  /**
   * Apply a new retention now: the trim comes first, in steps that commit one by one, and the
   * setting is stored after it. On a full storage the deletes need only journal room, and the
   * pages they free hold the setting (docs/architecture.md, "Full disk").
   */
  async configure(retention: Retention, now: number): Promise<void> {
    await trimInSteps(this.#log, now, this.#commit, retention);
    this.#log.setRetention(retention);
    this.#agesOutAt = undefined;
  }
}
