/**
 * The benchmark harness checks its own results; these tests prove the checks can fail: a lost,
 * duplicated or reordered message makes a run "failed", and a failed run never becomes a figure.
 * The last test runs one real case end to end against redis-server when it is installed.
 */
import { spawnSync } from "node:child_process";
import * as hdr from "hdr-histogram-js";
import { describe, expect, it } from "vitest";
import { decodePayload, encodePayload, OrderChecker, PAYLOAD_BYTES } from "../lib/payload.ts";
import { startRedis } from "../lib/peers.ts";
import { barChart, latencyChart, ratioToBest, renderMarkdown, type BenchResults, type ScenarioResult, type SystemResult } from "../lib/report.ts";
import { runCase, summarize, type CaseSpec } from "../lib/runner.ts";
import type { PublisherDone, SubscriberDone } from "../worker.ts";

const spec: CaseSpec = {
  id: "t",
  label: "t",
  topics: 1,
  pubsPerTopic: 2,
  subsPerTopic: 1,
  pubProcs: 1,
  subProcs: 1,
  warmup: 1,
  count: 3,
  batch: 1,
  window: 10,
  timeoutMs: 10_000,
};

function feed(checker: OrderChecker, items: [number, number][]): void {
  for (const [pub, seq] of items) checker.accept(encodePayload(pub, seq, 1n));
}

describe("payload", () => {
  it("is exactly 100 bytes and carries publisher, sequence and send time", () => {
    const p = encodePayload(42, 123456, 987654321012345n);
    expect(Buffer.byteLength(p)).toBe(PAYLOAD_BYTES);
    expect(decodePayload(p)).toEqual({ pub: 42, seq: 123456, sentNs: 987654321012345n });
  });
});

describe("OrderChecker", () => {
  it("passes every message of every publisher once and in order, interleaved", () => {
    const c = new OrderChecker(2);
    feed(c, [
      [0, 0],
      [1, 0],
      [1, 1],
      [0, 1],
    ]);
    expect(c.summary(2).ok).toBe(true);
  });
  it("fails a lost message", () => {
    const c = new OrderChecker(1);
    feed(c, [
      [0, 0],
      [0, 2],
    ]);
    expect(c.summary(3)).toMatchObject({ ok: false, missing: 1 });
  });
  it("fails a duplicate", () => {
    const c = new OrderChecker(1);
    feed(c, [
      [0, 0],
      [0, 1],
      [0, 1],
    ]);
    expect(c.summary(2)).toMatchObject({ ok: false, duplicates: 1 });
  });
  it("fails a reordering", () => {
    const c = new OrderChecker(1);
    feed(c, [
      [0, 1],
      [0, 0],
    ]);
    expect(c.summary(2).ok).toBe(false);
  });
  it("fails a stream that stopped early", () => {
    const c = new OrderChecker(1);
    feed(c, [[0, 0]]);
    expect(c.summary(4)).toMatchObject({ ok: false, missing: 3 });
  });
  it("fails a payload that is not ours", () => {
    const c = new OrderChecker(1);
    c.accept("hello");
    expect(c.summary(0)).toMatchObject({ ok: false, malformed: 1 });
  });
});

describe("summarize", () => {
  const histogram = () => {
    const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 1e6, numberOfSignificantValueDigits: 3 });
    h.recordValue(1500);
    return hdr.encodeIntoCompressedBase64(h);
  };
  const pubs = (sent: number): PublisherDone[] => [
    { type: "done", role: "pub", rssBytes: 0, pubs: [0, 1].map(() => ({ topic: "x", startNs: "1000000000", endNs: "2000000000", sent })) },
  ];
  const subs = (checker: OrderChecker, complete: boolean): SubscriberDone[] => [
    {
      type: "done",
      role: "sub",
      rssBytes: 0,
      histogram: histogram(),
      subs: [{ topic: "x", check: checker.summary(4), firstNs: "1000000000", lastNs: "3000000000", complete }],
    },
  ];

  it("turns a clean run into figures", () => {
    const c = new OrderChecker(2);
    for (let s = 0; s < 4; s++)
      feed(c, [
        [0, s],
        [1, s],
      ]);
    const run = summarize(spec, pubs(4), subs(c, true), [], [], null);
    expect(run.ok).toBe(true);
    // 2 publishers × 3 measured messages over 2 s from first measured send to last delivery.
    expect(run.metrics.deliveriesPerSec).toBeCloseTo(3);
    expect(run.metrics.p50Ms).toBeCloseTo(1.5, 1);
  });
  it("fails a run whose subscriber missed a message", () => {
    const c = new OrderChecker(2);
    for (let s = 0; s < 4; s++)
      feed(
        c,
        [
          [0, s],
          [1, s],
        ].filter(([p, q]) => !(p === 1 && q === 2)) as [number, number][],
      );
    const run = summarize(spec, pubs(4), subs(c, false), [], [], null);
    expect(run.ok).toBe(false);
    expect(run.problems.join(" ")).toMatch(/missing 1/);
  });
  it("fails a run whose publisher did not send everything", () => {
    const c = new OrderChecker(2);
    for (let s = 0; s < 4; s++)
      feed(c, [
        [0, s],
        [1, s],
      ]);
    expect(summarize(spec, pubs(3), subs(c, true), [], [], null).ok).toBe(false);
  });
});

describe("report", () => {
  const ok = (v: number, p99 = 1): SystemResult => ({
    ok: true,
    validRuns: 1,
    runs: [],
    median: { deliveriesPerSec: v, p99Ms: p99 },
    min: {},
    max: {},
    curve: [
      [0, 0.1],
      [0.5, p99 / 2],
      [0.99, p99],
      [1, p99 * 2],
    ],
  });
  const failed: SystemResult = {
    ok: false,
    validRuns: 0,
    runs: [{ ok: false, problems: ["subscriber on x: received 5, missing 1"], metrics: { deliveriesPerSec: 999_999 } }],
    median: {},
    min: {},
    max: {},
  };
  const scenario: ScenarioResult = {
    id: "s",
    title: "S",
    description: "d",
    systems: ["dovetail", "nats", "redis-pubsub"],
    rows: [
      { metric: "deliveriesPerSec", label: "throughput", unit: "msg/s", higherIsBetter: true },
      { metric: "p99Ms", label: "p99", unit: "ms", higherIsBetter: false },
    ],
    chart: "bars",
    cases: [{ id: "c", label: "case", spec: {}, results: { dovetail: ok(50_000, 4), nats: ok(100_000, 2), "redis-pubsub": failed } }],
  };
  const results: BenchResults = {
    schema: 1,
    startedAt: "t",
    finishedAt: "t",
    quick: true,
    runsPerCase: 1,
    machine: {},
    systems: {},
    scenarios: [scenario],
    edgeTargets: [],
    coldStart: {},
    external: {},
  };

  it("compares Dovetail with the best peer that passed, in the row's direction", () => {
    expect(ratioToBest(scenario.cases[0]!, scenario.rows[0]!)).toEqual({ ratio: 0.5, peer: "nats" });
    expect(ratioToBest(scenario.cases[0]!, scenario.rows[1]!)).toEqual({ ratio: 2, peer: "nats" });
  });
  it("shows a failed run as failed, never its figure", () => {
    const md = renderMarkdown(results);
    expect(md).toContain("**failed**");
    expect(md).not.toContain("1.00 M");
    expect(md).toContain("missing 1");
  });
  it("draws SVG without NaN for bars and latency curves", () => {
    for (const svg of [barChart(scenario), latencyChart({ ...scenario, chart: "latency" })]) {
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      expect(svg).not.toContain("NaN");
    }
  });
});

const hasRedis = spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;

describe.skipIf(!hasRedis)("one real case", () => {
  it("runs publisher and subscriber processes against redis-server and checks every message", async () => {
    const redis = await startRedis({ durable: false });
    if ("skipped" in redis) throw new Error(redis.skipped);
    try {
      const run = await runCase(
        "redis-streams",
        redis.url,
        { ...spec, pubsPerTopic: 2, subsPerTopic: 2, warmup: 10, count: 500, batch: 10 },
        { tag: `test${Date.now()}` },
      );
      expect(run.problems).toEqual([]);
      expect(run.ok).toBe(true);
      expect(run.metrics.deliveriesPerSec).toBeGreaterThan(0);
    } finally {
      await redis.stop();
    }
  });
});
