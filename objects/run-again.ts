/**
 * RunAgain: runs an async task one at a time; asked while it runs, it runs once more after, so
 * work queued meanwhile is not left behind. A failure goes to `onError` (the task's owner
 * schedules a retry). The registry and mail outboxes publish through it.
 *
 * @example
 * const publishing = new RunAgain(() => this.#publishOutbox(), (e) => this.#retryLater(e));
 * publishing.run(); // after each change that queued something
 */
export class RunAgain {
  readonly #task: () => Promise<void>;
  readonly #onError: (error: unknown) => Promise<void> | void;
  #running = false;
  #again = false;

  constructor(task: () => Promise<void>, onError: (error: unknown) => Promise<void> | void) {
    this.#task = task;
    this.#onError = onError;
  }

  /** Start the task, or ask the running one to go round once more. */
  run(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          await this.#task();
        } while (this.#again);
      } catch (error) {
        await this.#onError(error);
      } finally {
        this.#running = false;
      }
    })();
  }
}
