/**
 * The workloads of issue 7 (and issue 2's edge-core targets) as data: which systems run, which
 * cases, how big. `quick` keeps the whole suite within a minute or two for CI; the full sizes
 * are for the figures we publish. Every system gets the same message counts in a case.
 */
import type { CaseSpec } from "./runner.ts";
import type { SystemName } from "./systems.ts";

export interface Row {
  metric: string;
  label: string;
  unit: string;
  higherIsBetter: boolean;
  /** false: no "Dovetail ÷ best peer" for this row (a count, not a figure of merit). */
  ratio?: boolean;
}

export interface Scenario {
  id: string;
  title: string;
  description: string;
  systems: SystemName[];
  cases: CaseSpec[];
  /** Rows of the markdown table: each case × each of these metrics. */
  rows: Row[];
  /** Chart kind: bars of one row's metric (`chartMetric`, else the first row's), or latency percentile curves. */
  chart: "bars" | "latency";
  chartMetric?: string;
}

/** Dovetail's rows: raw protocol at the default (`sync`) level, through the SDK, and raw at the other durability levels. */
export const DOVETAIL_SYSTEMS: SystemName[] = ["dovetail", "dovetail-sdk", "dovetail-async", "dovetail-memory"];
/** The peers: in memory (Redis pub/sub, Redis Streams, core NATS) and durable (Redis Streams with AOF, JetStream). */
export const PEER_SYSTEMS: SystemName[] = ["redis-pubsub", "redis-streams", "redis-streams-aof", "nats", "nats-jetstream"];
/** Every system `--systems` knows. */
export const ALL_SYSTEMS: SystemName[] = [...DOVETAIL_SYSTEMS, ...PEER_SYSTEMS];
/**
 * The rows issue 17 added. A quick run without `--systems` runs them only in `latency` and
 * `agent-bus`, to keep CI's `npm run bench -- --quick` within its few minutes; `--systems`
 * naming them runs them wherever their scenario lists them.
 */
export const QUICK_LATENCY_AGENT_ONLY: SystemName[] = ["dovetail-sdk", "dovetail-async", "dovetail-memory", "nats-jetstream"];
/** The publish/subscribe workloads without durability-level rows (fan-out, slow consumer). */
const PUBSUB_SYSTEMS: SystemName[] = ALL_SYSTEMS.filter((s) => s !== "dovetail-async" && s !== "dovetail-memory");

const MSG_S: Row = { metric: "deliveriesPerSec", label: "throughput", unit: "msg/s", higherIsBetter: true };
const DELIVERIES: Row = { metric: "deliveriesPerSec", label: "deliveries/s", unit: "deliveries/s", higherIsBetter: true };
const PUB_RATE: Row = { metric: "publishMsgPerSec", label: "publish rate", unit: "msg/s", higherIsBetter: true };
const US_PER_DELIVERY: Row = { metric: "usPerDelivery", label: "µs per delivery", unit: "µs", higherIsBetter: false };
const P50: Row = { metric: "p50Ms", label: "p50", unit: "ms", higherIsBetter: false };
const P90: Row = { metric: "p90Ms", label: "p90", unit: "ms", higherIsBetter: false };
const P99: Row = { metric: "p99Ms", label: "p99", unit: "ms", higherIsBetter: false };
const P999: Row = { metric: "p999Ms", label: "p99.9", unit: "ms", higherIsBetter: false };
const MAX: Row = { metric: "maxMs", label: "max", unit: "ms", higherIsBetter: false };
const MEM: Row = { metric: "serverRssGrowthMB", label: "server memory growth", unit: "MB", higherIsBetter: false };
const SLOW_RECEIVED: Row = { metric: "slowReceived", label: "slow consumer received", unit: "messages", higherIsBetter: true, ratio: false };

function base(id: string, label: string): CaseSpec {
  return { id, label, topics: 1, pubsPerTopic: 1, subsPerTopic: 1, pubProcs: 1, subProcs: 1, warmup: 0, count: 0, batch: 1, window: 1000, timeoutMs: 60_000 };
}

/**
 * @param quick CI sizes.
 * @param only Scenario ids selected with --only (null = all). Two edge-core cases are cases of
 *   other scenarios (throughput/unbatched, latency/rate-10000); edge-core runs them itself only
 *   when those scenarios are not selected.
 */
export function scenarios(quick: boolean, only: Set<string> | null = null, systemsNamed = false): Scenario[] {
  const q = <T>(quickValue: T, fullValue: T) => (quick ? quickValue : fullValue);
  /** Outside latency and agent-bus, a quick run leaves the issue 17 rows out unless `--systems` named them. */
  const trimmed = (list: SystemName[]) => (quick && !systemsNamed ? list.filter((s) => !QUICK_LATENCY_AGENT_ONLY.includes(s)) : list);
  const throughputCount = q(5_000, 30_000);
  const throughputWarmup = q(500, 3_000);
  const latencySeconds = q(1.5, 3);
  const latencyWarmupSeconds = q(0.5, 1);
  const fanoutDeliveries = q(50_000, 300_000);
  const slowSeconds = q(1.5, 3);
  const fanoutSubs = q([10, 100], [10, 100, 1000]);

  const latencyCase = (rate: number): CaseSpec => ({
    ...base(`rate-${rate}`, `${rate.toLocaleString("en-US")} msg/s`),
    warmup: Math.round(rate * latencyWarmupSeconds),
    count: Math.round(rate * latencySeconds),
    ratePerSec: rate,
    window: 100_000,
    // A system that cannot sustain the rate falls behind; give it three times the run to catch up.
    timeoutMs: (latencySeconds + latencyWarmupSeconds) * 3000 + 10_000,
  });

  return [
    {
      id: "throughput",
      title: "1. Throughput, 1 publisher → 1 subscriber",
      description:
        "As fast as the system takes them: unbatched = one API call per message with up to 1,000 calls in flight; batched = 100 messages per call (Dovetail publish frame, Redis pipeline; core NATS has no batch API and coalesces publishes itself; neither the SDK's publisher nor JetStream has one: 100 sends, then their acks awaited), 10 calls in flight. dovetail-sdk sends one message per `pub.send` and its publisher batches them (default options). msg/s = measured messages ÷ (last delivery − first measured send).",
      systems: trimmed(ALL_SYSTEMS),
      cases: [
        { ...base("unbatched", "unbatched"), warmup: throughputWarmup, count: throughputCount, batch: 1, window: 1000 },
        { ...base("batched", "batched ×100"), warmup: throughputWarmup, count: throughputCount, batch: 100, window: 10 },
      ],
      rows: [MSG_S, P50, P99],
      chart: "bars",
    },
    {
      id: "fanout",
      title: "2. Fan-out, 1 publisher → N subscribers",
      description:
        "One publisher, batched ×100; every subscriber must get every message in order. Subscribers share a few processes (2, or 4 for 1,000). The message count per case is chosen so each case makes the same number of deliveries.",
      systems: trimmed(PUBSUB_SYSTEMS),
      cases: fanoutSubs.map((n) => ({
        ...base(`subs-${n}`, `${n.toLocaleString("en-US")} subscribers`),
        subsPerTopic: n,
        subProcs: n >= 1000 ? 4 : 2,
        warmup: Math.max(100, Math.round(fanoutDeliveries / n / 10)),
        count: Math.round(fanoutDeliveries / n),
        batch: 100,
        window: 10,
        timeoutMs: q(30_000, 60_000),
      })),
      rows: [DELIVERIES, US_PER_DELIVERY, P99],
      chart: "bars",
    },
    {
      id: "latency",
      title: "3. Latency at fixed rates, 1 publisher → 1 subscriber",
      description: `Unbatched, one API call per message at a fixed rate for ${latencySeconds} s after ${latencyWarmupSeconds} s of warm-up. Latency is publish-to-delivery measured from each message's intended send time (coordinated-omission aware; the publisher's timer tick is ~1 ms, so sub-millisecond figures carry up to that much scheduling delay for every system alike). HDR histogram, 3 significant digits.`,
      systems: ALL_SYSTEMS,
      cases: [latencyCase(1_000), latencyCase(10_000)],
      rows: [{ ...MSG_S, label: "delivered rate" }, P50, P90, P99, P999, MAX],
      chart: "latency",
    },
    {
      id: "agent-bus",
      title: "4. Agent bus: 10 topics × 10 publishers, 10 subscribers each",
      description:
        "The reference documents' workload: 100 publishers, 100 subscribers, 10 topics, 100-byte messages. Unbatched publishes, 100 calls in flight per publisher; publishers over 2 processes, subscribers over 2.",
      systems: ALL_SYSTEMS,
      cases: [
        {
          ...base("10x10", "10 topics × 10 pubs × 10 subs"),
          topics: 10,
          pubsPerTopic: 10,
          subsPerTopic: 10,
          pubProcs: 2,
          subProcs: 2,
          warmup: q(20, 100),
          count: q(100, 500),
          batch: 1,
          window: 100,
          timeoutMs: q(60_000, 120_000),
        },
      ],
      rows: [PUB_RATE, DELIVERIES, P50, P99],
      chart: "bars",
      chartMetric: "deliveriesPerSec",
    },
    {
      id: "slow-consumer",
      title: "5. Slow consumer beside fast ones",
      description: `One publisher at 2,000 msg/s (unbatched) for ${slowSeconds} s, 3 fast subscribers, with and without one more subscriber that reads 10 msg/s (credit 1 at a time on Dovetail, a buffer of 1 through the SDK; XREAD COUNT 1 on Redis Streams; next() one at a time on JetStream; a raw TCP client that stops reading on Redis pub/sub and NATS, so the server has to hold or drop what it does not read). The fast subscribers' latency, the publisher's rate and the server's memory growth should not change.`,
      systems: trimmed(PUBSUB_SYSTEMS),
      cases: [false, true].map((slow) => ({
        ...base(slow ? "with-slow" : "without-slow", slow ? "with a 10 msg/s consumer" : "without"),
        subsPerTopic: 3,
        warmup: 1_000,
        count: slowSeconds * 2_000,
        ratePerSec: 2_000,
        window: 100_000,
        timeoutMs: slowSeconds * 3000 + 15_000,
        ...(slow ? { slow: { perTopic: 1, ratePerSec: 10 } } : {}),
      })),
      rows: [PUB_RATE, P50, P99, MEM, SLOW_RECEIVED],
      chart: "bars",
      chartMetric: "p99Ms",
    },
    {
      id: "edge-core",
      title: "Edge core targets (issue 2), Dovetail only",
      description:
        "Single topic, 100-byte messages, local workerd: durable ingest with batched frames (1,000 messages per frame, 4 in flight, one subscriber) and deliveries/s with 10 subscribers. The other two targets read the figures of cases above: one message per frame = throughput/unbatched (1,000 frames in flight, group commit doing the work), latency at a steady 10,000 msg/s = latency/10,000 msg/s.",
      systems: ["dovetail"],
      cases: [
        { ...base("ingest-batched", "batched ingest, 1 subscriber"), warmup: q(2_000, 20_000), count: q(20_000, 200_000), batch: 1000, window: 4 },
        // The same case as throughput/unbatched: run here only when that scenario is not selected.
        ...(only && !only.has("throughput")
          ? [{ ...base("unbatched", "one message per frame"), warmup: throughputWarmup, count: throughputCount, batch: 1, window: 1000 }]
          : []),
        {
          ...base("deliveries-10", "10 subscribers"),
          subsPerTopic: 10,
          subProcs: 2,
          warmup: q(1_000, 10_000),
          count: q(10_000, 100_000),
          batch: 1000,
          window: 4,
          timeoutMs: q(30_000, 60_000),
        },
        ...(only && !only.has("latency") ? [latencyCase(10_000)] : []),
      ],
      rows: [MSG_S, P50, P99],
      chart: "bars",
    },
  ];
}

/** Issue 2's targets, checked against Dovetail's figures in the edge-core, throughput and latency scenarios. */
export const EDGE_TARGETS = [
  {
    case: "ingest-batched",
    metric: "deliveriesPerSec",
    label: "durable ingest, batched frames, 1 subscriber",
    target: 100_000,
    higherIsBetter: true,
    unit: "msg/s",
  },
  { case: "unbatched", metric: "deliveriesPerSec", label: "one message per frame", target: 20_000, higherIsBetter: true, unit: "msg/s" },
  {
    case: "deliveries-10",
    metric: "deliveriesPerSec",
    label: "deliveries/s with 10 subscribers",
    target: 1_000_000,
    higherIsBetter: true,
    unit: "deliveries/s",
  },
  { case: "rate-10000", metric: "p50Ms", label: "p50 at 10,000 msg/s", target: 2, higherIsBetter: false, unit: "ms" },
  { case: "rate-10000", metric: "p99Ms", label: "p99 at 10,000 msg/s", target: 10, higherIsBetter: false, unit: "ms" },
] as const;
