/**
 * One alarm for every module of a Topic (objects/topic-module.ts): each says when it next needs
 * the alarm, and the scheduler keeps the object's single alarm at the earliest of those times.
 * The alarm time it set is remembered, so a check after each commit costs no storage call unless
 * an earlier deadline appears.
 *
 * @example
 * const alarms = new AlarmScheduler(ctx.storage, () => modules);
 * alarms.reschedule(); // after anything that may move a deadline
 */
import type { TopicModule } from "./topic-module.ts";

type AlarmStorage = Pick<DurableObjectStorage, "getAlarm" | "setAlarm">;

export class AlarmScheduler {
  readonly #storage: AlarmStorage;
  readonly #modules: () => readonly TopicModule[];
  /** The alarm set in storage: undefined until read after a wake, null when none is set. */
  #armedAt: number | null | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(storage: AlarmStorage, modules: () => readonly TopicModule[]) {
    this.#storage = storage;
    this.#modules = modules;
  }

  /** The earliest deadline any module has now, or null. */
  earliest(now = Date.now()): number | null {
    let at: number | null = null;
    for (const m of this.#modules()) {
      const d = m.nextDeadline?.(now) ?? null;
      if (d !== null && (at === null || d < at)) at = d;
    }
    return at;
  }

  /** Make the alarm fire no later than the earliest deadline. Resolves once it is set. */
  reschedule(): Promise<void> {
    const at = this.earliest();
    if (at === null || (this.#armedAt !== undefined && this.#armedAt !== null && this.#armedAt <= at)) return this.#chain;
    // One storage exchange at a time, so two reschedules never race to set a later time.
    this.#chain = this.#chain
      .then(async () => {
        if (this.#armedAt === undefined) this.#armedAt = await this.#storage.getAlarm();
        const wanted = this.earliest();
        if (wanted !== null && (this.#armedAt === null || wanted < this.#armedAt)) {
          await this.#storage.setAlarm(wanted);
          this.#armedAt = wanted;
        }
      })
      .catch((error: unknown) => {
        // Read the alarm again next time; a deadline that was missed is asked for again then.
        this.#armedAt = undefined;
        console.error("topic: could not set the alarm", error);
      });
    return this.#chain;
  }

  /** The alarm fired (storage no longer holds it), or it was deleted. */
  fired(): void {
    this.#armedAt = null;
  }
}
