/**
 * The Directory reporter as a Topic module: the tenant's Directory (objects/directory.ts) lists
 * the topic before its first write is acknowledged, hears its stats at most every
 * {@link REPORT_INTERVAL_MS} while it is active (never on the publish path), and forgets it when
 * it is deleted. Each report also carries the topic's metrics since the last one (counted in
 * memory by objects/topic-metrics.ts) and, when the deployment binds one, writes them to Workers
 * Analytics Engine (docs/observability.md).
 */
import { DovetailError } from "../protocol/errors.ts";
import type { TopicStats } from "./directory.ts";
import { REPORT_INTERVAL_MS, type Directory } from "./directory.ts";
import type { TopicLog } from "./log.ts";
import type { TopicGauges, TopicMetricsReport } from "../protocol/metrics.ts";
import type { TopicMetrics } from "./topic-metrics.ts";
import { knownError } from "./rpc-result.ts";
import { logLine } from "../protocol/log-line.ts";
import type { TopicModule } from "./topic-module.ts";

export interface DirectoryReporterHost {
  /** This topic's name in its tenant. */
  topic(): string;
  /** The tenant's Directory. */
  directory(): DurableObjectStub<Directory>;
  subscribers(): number;
  /** The topic's in-memory counts, taken (and reset) at each report. */
  metrics?: TopicMetrics;
  /** What the counts do not say: sockets and consumer groups now. */
  gauges?(): Omit<TopicGauges, "subscribers">;
  /** The deployment's Analytics Engine dataset, when bound (`DOVETAIL_ANALYTICS`). */
  analytics?(): AnalyticsEngineDataset | undefined;
  /** The tenant, for Analytics Engine rows. */
  tenant?(): string;
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

  onCommit(): void {
    this.soon();
  }

  /**
   * Report now if the last report is old enough, else once when it is. A topic that holds
   * nothing yet is not reported (a report lists it, and reads never create topics); its counts
   * wait for its first write.
   */
  soon(): void {
    if (this.#timer !== null || !this.#log.exists) return;
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
    let metrics: TopicMetricsReport | undefined;
    if (this.#host.metrics) {
      metrics = { counters: this.#host.metrics.take(), gauges: { connections: 0, groups: [], ...this.#host.gauges?.(), subscribers: stats.subscribers } };
      this.#writeAnalytics(stats, metrics);
    }
    this.#host
      .directory()
      .report(this.#host.topic(), stats, this.#lastReportAt, metrics)
      .catch((e: unknown) => console.error(logLine("error", "directory report failed", { topic: this.#host.topic(), error: e })));
  }

  /** One Analytics Engine row per report: index the tenant; blobs tenant, topic; doubles the counts (docs/observability.md). */
  #writeAnalytics(stats: TopicStats, m: TopicMetricsReport): void {
    const dataset = this.#host.analytics?.();
    if (!dataset) return;
    const c = m.counters;
    const failures = Object.values(c.failures).reduce((a: number, b) => a + (b ?? 0), 0);
    const lag = m.gauges.groups.reduce((a, g) => a + g.lag, 0);
    const tenant = this.#host.tenant?.() ?? "";
    try {
      dataset.writeDataPoint({
        indexes: [tenant],
        blobs: [tenant, this.#host.topic()],
        doubles: [c.published, c.delivered, c.commits, c.backpressure, c.dlq, failures, stats.bytes, stats.subscribers, m.gauges.connections, lag],
      });
    } catch (e) {
      console.error(logLine("error", "analytics engine write failed", { topic: this.#host.topic(), error: e }));
    }
  }
}
