/**
 * The work-queue scenario's checks (bench/lib/work-queue.ts) can fail: a message never acked,
 * acked twice or unknown makes a run fail; the report compares Dovetail with peers only (not
 * with its own variants) and shows issue 12's goals. The last tests run the scenario's real
 * cases (worker processes, a SIGKILL) against redis-server when it is installed.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { startRedis } from "../lib/peers.ts";
import { ratioToBest, renderMarkdown, type BenchResults, type ScenarioResult, type SystemResult } from "../lib/report.ts";
import { checkAcks, redeliveryRun, throughputRun, workQueueConfig } from "../lib/work-queue.ts";

describe("checkAcks", () => {
  it("passes every id acked once, spread over workers", () => {
    expect(checkAcks(4, [[0, 2], [3, 1], []])).toEqual({ distinct: 4, duplicates: 0, missing: 0, unknown: 0 });
  });
  it("counts an id never acked", () => {
    expect(checkAcks(4, [[0, 1, 3]])).toMatchObject({ missing: 1 });
  });
  it("counts an id acked twice, also by two workers", () => {
    expect(
      checkAcks(3, [
        [0, 1],
        [1, 2],
      ]),
    ).toMatchObject({ duplicates: 1, missing: 0 });
  });
  it("counts ids outside the published range", () => {
    expect(checkAcks(2, [[0, 1, 7, -1]])).toMatchObject({ unknown: 2 });
  });
});

describe("report", () => {
  const ok = (ackedPerSec: number): SystemResult => ({ ok: true, validRuns: 1, runs: [], median: { ackedPerSec }, min: {}, max: {} });
  const scenario: ScenarioResult = {
    id: "work-queue",
    title: "Work queue",
    description: "d",
    systems: ["dovetail", "dovetail-raw", "redis-streams", "nats-jetstream"],
    rows: [{ metric: "ackedPerSec", label: "acked", unit: "msg/s", higherIsBetter: true }],
    chart: "bars",
    cases: [
      {
        id: "backlog",
        label: "backlog",
        spec: {},
        results: { dovetail: ok(10_000), "dovetail-raw": ok(40_000), "redis-streams": ok(20_000), "nats-jetstream": ok(5_000) },
      },
    ],
    targets: [{ label: "dovetail acked msg/s ≥ the faster peer", target: 20_000, unit: "msg/s", higherIsBetter: true, value: 10_000, met: false }],
  };
  it("takes the best peer, not another Dovetail variant", () => {
    expect(ratioToBest(scenario.cases[0]!, scenario.rows[0]!)).toEqual({ ratio: 0.5, peer: "redis-streams" });
  });
  it("shows the goals under the scenario's table", () => {
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
    const md = renderMarkdown(results);
    expect(md).toContain("| dovetail acked msg/s ≥ the faster peer | ≥ 20.0 k msg/s | 10.0 k msg/s | **no** |");
  });
});

const hasRedis = spawnSync("sh", ["-c", "command -v redis-server"]).status === 0;

describe.skipIf(!hasRedis)("real work-queue cases against redis-server", () => {
  const cfg = { ...workQueueConfig(true), workers: 4, procs: 2, timeoutMs: 30_000, redelivery: { jobs: 5, ackWaitMs: 500 } };

  it("acks a backlog with worker processes and checks every id and the server's pending list", async () => {
    const redis = await startRedis({ durable: false });
    if ("skipped" in redis) throw new Error(redis.skipped);
    try {
      const run = await throughputRun("redis-streams", redis, "backlog", 2000, cfg, `test${Date.now()}`);
      expect(run.problems).toEqual([]);
      expect(run.metrics.ackedPerSec).toBeGreaterThan(0);
      expect(run.metrics.deliveries).toBe(2000);
      expect(run.metrics.serverCpuUsPerAck).toBeGreaterThanOrEqual(0);
      expect(run.metrics.workerCpuUsPerAck).toBeGreaterThan(0);
    } finally {
      await redis.stop();
    }
  });

  it("measures redelivery after a worker process is killed (XAUTOCLAIM at the ack wait)", async () => {
    const redis = await startRedis({ durable: false });
    if ("skipped" in redis) throw new Error(redis.skipped);
    try {
      const run = await redeliveryRun("redis-streams", redis.url, cfg, `test${Date.now()}`);
      expect(run.problems).toEqual([]);
      // Redis hands the jobs over once they have been idle for the ack wait, not before.
      expect(run.metrics.redeliveryMs! + run.metrics.heldBeforeKillMs!).toBeGreaterThanOrEqual(500);
      expect(run.metrics.ackWaitMs).toBe(500);
    } finally {
      await redis.stop();
    }
  });
});
