/**
 * The Directory reporter as a Topic module: the tenant's Directory (objects/directory.ts) lists
 * the topic before its first write is acknowledged, hears its stats at most every
 * {@link REPORT_INTERVAL_MS} while it is active (never on the publish path), and forgets it when
 * it is deleted.
 */
import { DovetailError } from "../protocol/errors.ts";
import type { TopicStats } from "./directory.ts";
import { REPORT_INTERVAL_MS, type Directory } from "./directory.ts";
import type { TopicLog } from "./log.ts";
import { knownError } from "./rpc-result.ts";
import type { TopicModule } from "./topic-module.ts";

export interface DirectoryReporterHost {
  /** This topic's name in its tenant. */
  topic(): string;
  /** The tenant's Directory. */
  directory(): DurableObjectStub<Directory>;
  subscribers(): number;
}

export class DirectoryReporter implements TopicModule {
  readonly #host: DirectoryReporterHost;
  readonly #log: TopicLog;
  /** Whether the Directory lists this topic. A topic with storage was listed when it was created. */
  #listed = false;
  #listing: Promise<void> | null = null;
  #lastReportAt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(log: TopicLog, host: DirectoryReporterHost) {
    this.#log = log;
    this.#host = host;
  }

  /** The first write of a new topic waits until the Directory lists it; later writes do not. */
  beforeWrite(): Promise<void> | void {
    if (this.#listed || this.#log.exists) return;
    this.#listing ??= this.#host
      .directory()
      .created(this.#host.topic(), Date.now())
      .then(
        () => {
          this.#listed = true;
        },
        (error: unknown) => {
          this.#listing = null;
          throw (
            knownError(error) ??
            new DovetailError("internal", "the topic could not be listed in the tenant's directory; nothing was stored", {}, { cause: error })
          );
        },
      );
    return this.#listing;
  }

  /** Report now if the last report is old enough, else once when it is. */
  onCommit(): void {
    if (this.#timer !== null) return;
    const wait = this.#lastReportAt + REPORT_INTERVAL_MS - Date.now();
    if (wait <= 0) this.#report();
    else this.#timer = setTimeout(() => this.#report(), wait);
  }

  async onDelete(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#host.directory().deleted(this.#host.topic(), Date.now());
  }

  #report(): void {
    this.#timer = null;
    this.#lastReportAt = Date.now();
    const info = this.#log.info();
    const stats: TopicStats = { lastActive: info.lastTime, head: info.head, messages: info.messages, bytes: info.bytes, subscribers: this.#host.subscribers() };
    this.#host
      .directory()
      .report(this.#host.topic(), stats, this.#lastReportAt)
      .catch((e: unknown) => console.error("topic: directory report failed", e));
  }
}
