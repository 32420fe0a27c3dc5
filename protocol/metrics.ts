/**
 * The bus's metrics as data (docs/observability.md): what a topic object counts between two
 * reports to its tenant's Directory, what the Directory keeps, and what the gateway counts.
 * Runtime-free, so the objects, the gateway and the `dovetail top` command share one shape;
 * the Prometheus text is written by the gateway (workers/metrics/prometheus.ts).
 *
 * Counters travel as deltas (what happened since the last report) and are summed where they are
 * kept, so a topic object that leaves memory loses at most one report interval of counts and a
 * Directory never double-counts.
 *
 * @example
 * const h = emptyHistogram();
 * observe(h, 0.004, 10); // ten messages, each 4 ms
 */

/** Upper bounds (seconds) of every duration histogram's buckets; a last bucket is +Inf. */
export const DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** Name of the Directory object that keeps deployment-wide counts; tenant names cannot start with `_`. */
export const DEPLOYMENT_DIRECTORY = "__deployment";

/** A histogram: per-bucket counts (not cumulative; the last is +Inf), their sum (seconds) and count. */
export interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

/** Why a delivery failed (`amb_delivery_failures_total{reason}`). */
export type DeliveryFailure = "nack" | "timeout" | "member_gone" | "trimmed" | "socket_gone";

/** What a topic counted since its last report. */
export interface TopicCounters {
  /** Messages committed to the log. */
  published: number;
  /** Messages sent to subscribers and consumer-group members. */
  delivered: number;
  /** Group commits (SQLite transactions). */
  commits: number;
  /** Times delivery paused because a subscriber ran out of credit (flow control). */
  backpressure: number;
  /** Messages stored in a dead-letter topic by this topic's groups. */
  dlq: number;
  failures: Partial<Record<DeliveryFailure, number>>;
  /** Refusals by the topic's own limits (frames, bytes, per-topic publish rate), by reason. */
  rateLimited: Record<string, number>;
  /** Submit to durable, per publish. */
  publishDuration: Histogram;
  /** Commit to send, per message (a frame's oldest message's age for each of its messages). */
  deliveryDuration: Histogram;
  /** Flush to durable, per commit. */
  commitDuration: Histogram;
}

/** A topic's state at its last report. */
export interface TopicGauges {
  connections: number;
  subscribers: number;
  /** Consumer groups: lag (head − ack floor) and delivered-but-unsettled jobs. */
  groups: { group: string; lag: number; pending: number }[];
}

/** One report of a topic to its Directory. */
export interface TopicMetricsReport {
  counters: TopicCounters;
  gauges: TopicGauges;
}

/** Counts the gateway keeps: rate-limit refusals and auth failures, by reason. */
export interface GatewayCounters {
  rateLimited: Record<string, number>;
  authFailures: Record<string, number>;
}

/** A tenant's metrics as its Directory answers them. */
export interface TenantMetrics {
  topics: {
    name: string;
    messages: number;
    bytes: number;
    subscribers: number;
    head: number;
    counters: TopicCounters;
    gauges: TopicGauges;
  }[];
  gateway: GatewayCounters;
}

export function emptyHistogram(): Histogram {
  return { buckets: new Array<number>(DURATION_BUCKETS_S.length + 1).fill(0), sum: 0, count: 0 };
}

export function emptyCounters(): TopicCounters {
  return {
    published: 0,
    delivered: 0,
    commits: 0,
    backpressure: 0,
    dlq: 0,
    failures: {},
    rateLimited: {},
    publishDuration: emptyHistogram(),
    deliveryDuration: emptyHistogram(),
    commitDuration: emptyHistogram(),
  };
}

export function emptyGatewayCounters(): GatewayCounters {
  return { rateLimited: {}, authFailures: {} };
}

/** Count `times` observations of `seconds` (no allocation). */
export function observe(h: Histogram, seconds: number, times = 1): void {
  const s = Number.isFinite(seconds) && seconds > 0 ? seconds : 0; // a clock step back counts as 0
  let i = 0;
  while (i < DURATION_BUCKETS_S.length && s > DURATION_BUCKETS_S[i]!) i++;
  h.buckets[i] = (h.buckets[i] ?? 0) + times;
  h.sum += s * times;
  h.count += times;
}

/** Add `b` into `a`. */
export function addHistogram(a: Histogram, b: Histogram): void {
  for (let i = 0; i < a.buckets.length; i++) a.buckets[i] = (a.buckets[i] ?? 0) + (b.buckets[i] ?? 0);
  a.sum += b.sum;
  a.count += b.count;
}

/** Add counts by reason of `b` into `a`. */
export function addCounts(a: Record<string, number>, b: Record<string, number | undefined>): void {
  for (const [k, v] of Object.entries(b)) if (v) a[k] = (a[k] ?? 0) + v;
}

/** Add the counters `b` into `a`. */
export function addCounters(a: TopicCounters, b: TopicCounters): void {
  a.published += b.published;
  a.delivered += b.delivered;
  a.commits += b.commits;
  a.backpressure += b.backpressure;
  a.dlq += b.dlq;
  addCounts(a.failures, b.failures);
  addCounts(a.rateLimited, b.rateLimited);
  addHistogram(a.publishDuration, b.publishDuration);
  addHistogram(a.deliveryDuration, b.deliveryDuration);
  addHistogram(a.commitDuration, b.commitDuration);
}

/** Counters read back from storage or the wire, with every field present (older rows may lack some). */
export function normalizeCounters(raw: Partial<TopicCounters> | null | undefined): TopicCounters {
  const c = emptyCounters();
  if (raw) addCounters(c, { ...emptyCounters(), ...raw });
  return c;
}
