/**
 * Retention as a Topic module: trims the log by age, count and bytes, and forgets idle
 * idempotent producers. It runs on the alarm, at most {@link RETENTION_CHECK_MS} after a write
 * and every {@link RETENTION_CHECK_MS} while an age limit has messages to age out; a new setting
 * is applied at once (`configure`).
 */
import type { Retention, TopicLog } from "./log.ts";
import { trimInSteps } from "./storage-guard.ts";
import type { TopicModule } from "./topic-module.ts";

/** How long after a write, and how often under an age limit, retention runs. */
export const RETENTION_CHECK_MS = 10_000;

export class RetentionModule implements TopicModule {
  readonly #log: TopicLog;
  readonly #commit: () => Promise<void>;
  /** Written to since retention last ran (so limits may be exceeded). */
  #written = false;
  #since = 0;

  /** `commit` makes the writes so far durable (each trim step commits on its own: see trimInSteps). */
  constructor(log: TopicLog, commit: () => Promise<void>) {
    this.#log = log;
    this.#commit = commit;
  }

  onCommit(): void {
    if (this.#written || !this.#log.hasRetention()) return;
    this.#written = true;
    this.#since = Date.now();
  }

  nextDeadline(now: number): number | null {
    const log = this.#log;
    if (!log.hasRetention()) return null;
    const { maxAgeMs } = log.retention;
    let at: number | null = this.#written ? this.#since + RETENTION_CHECK_MS : null;
    if (maxAgeMs > 0 && log.head > log.earliest) {
      const aging = now + Math.min(maxAgeMs, RETENTION_CHECK_MS);
      if (at === null || aging < at) at = aging;
    }
    return at;
  }

  async onAlarm(now: number): Promise<void> {
    this.#written = false;
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
  }
}
