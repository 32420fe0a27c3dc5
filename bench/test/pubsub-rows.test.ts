/**
 * Issue 17's rows (bench/lib/sdk-clients.ts, topic-setup.ts): which scenarios run them, that
 * they are never counted as Dovetail's peers, and real runs of each against the real servers —
 * JetStream (a stream per topic, ordered consumers) on nats-server, the SDK and the durability
 * levels on a local bus — with the harness's count-and-order checks.
 */
import { spawnSync } from "node:child_process";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../../test/support/bus-process.ts";
import { startNats } from "../lib/peers.ts";
import { barChart, latencyChart, ratioToBest, renderMarkdown, type BenchResults, type ScenarioResult, type SystemResult } from "../lib/report.ts";
import { runCase, type CaseSpec } from "../lib/runner.ts";
import { ALL_SYSTEMS, QUICK_LATENCY_AGENT_ONLY, scenarios } from "../lib/scenarios.ts";
import type { Durability } from "../../protocol/durability.ts";
import { natsServer } from "../lib/systems.ts";
import { setDurability } from "../lib/topic-setup.ts";

const spec: CaseSpec = {
  id: "t",
  label: "t",
  topics: 2,
  pubsPerTopic: 2,
  subsPerTopic: 2,
  pubProcs: 1,
  subProcs: 1,
  warmup: 10,
  count: 300,
  batch: 1,
  window: 50,
  timeoutMs: 60_000,
};

describe("scenarios", () => {
  const systemsOf = (list: ReturnType<typeof scenarios>, id: string) => list.find((s) => s.id === id)!.systems;

  it("runs the SDK, durability and JetStream rows beside every peer in a full run", () => {
    const full = scenarios(false);
    for (const id of ["throughput", "latency", "agent-bus"]) expect(systemsOf(full, id)).toEqual(ALL_SYSTEMS);
    for (const id of ["fanout", "slow-consumer"]) {
      expect(systemsOf(full, id)).toContain("dovetail-sdk");
      expect(systemsOf(full, id)).toContain("nats-jetstream");
      expect(systemsOf(full, id)).toContain("redis-streams-aof");
      expect(systemsOf(full, id)).not.toContain("dovetail-async");
    }
  });
  it("keeps the new rows to latency and agent-bus in a quick run, unless --systems names them", () => {
    const quick = scenarios(true);
    expect(systemsOf(quick, "latency")).toEqual(ALL_SYSTEMS);
    expect(systemsOf(quick, "agent-bus")).toEqual(ALL_SYSTEMS);
    for (const id of ["throughput", "fanout", "slow-consumer"]) {
      for (const sys of QUICK_LATENCY_AGENT_ONLY) expect(systemsOf(quick, id)).not.toContain(sys);
      expect(systemsOf(quick, id)).toContain("redis-streams-aof");
    }
    expect(systemsOf(scenarios(true, null, true), "throughput")).toEqual(ALL_SYSTEMS);
  });
});

describe("report", () => {
  const ok = (v: number): SystemResult => ({ ok: true, validRuns: 1, runs: [], median: { deliveriesPerSec: v }, min: {}, max: {} });
  const row = { metric: "deliveriesPerSec", label: "throughput", unit: "msg/s", higherIsBetter: true };
  const scenario: ScenarioResult = {
    id: "s",
    title: "S",
    description: "d",
    systems: ["dovetail", "dovetail-sdk", "dovetail-memory", "nats", "nats-jetstream"],
    rows: [row],
    chart: "bars",
    cases: [
      {
        id: "c",
        label: "case",
        spec: {},
        results: { dovetail: ok(10_000), "dovetail-sdk": ok(40_000), "dovetail-memory": ok(500_000), nats: ok(80_000), "nats-jetstream": ok(20_000) },
      },
    ],
  };

  it("never takes another Dovetail row as the best peer", () => {
    expect(ratioToBest(scenario.cases[0]!, row)).toEqual({ ratio: 0.125, peer: "nats" });
    expect(ratioToBest(scenario.cases[0]!, row, "dovetail-sdk")).toEqual({ ratio: 0.5, peer: "nats" });
  });
  it("gives the raw and the SDK row each a ratio column and names the SDK row", () => {
    const results: BenchResults = {
      schema: 1,
      startedAt: "t",
      finishedAt: "t",
      quick: true,
      runsPerCase: 1,
      machine: {},
      systems: { "dovetail-sdk": { status: "ok" } },
      scenarios: [scenario],
      edgeTargets: [],
      coldStart: {},
      external: {},
    };
    const md = renderMarkdown(results);
    expect(md).toContain("| Dovetail ÷ best peer | Dovetail SDK ÷ best peer |");
    expect(md).toContain("| 0.125× nats | 0.500× nats |");
    expect(md).toContain("Dovetail via @dovetail/sdk");
  });
  it("wraps a legend of many systems inside the chart", () => {
    const many = { ...scenario, systems: ALL_SYSTEMS };
    for (const svg of [barChart(many), latencyChart({ ...many, chart: "latency" })]) {
      const width = Number(/width="(\d+)"/.exec(svg)![1]);
      const height = Number(/height="(\d+)"/.exec(svg)![1]);
      for (const label of ALL_SYSTEMS) {
        const m = new RegExp(`<text x="([\\d.]+)" y="([\\d.]+)">${label}</text>`).exec(svg)!;
        expect(Number(m[1]) + label.length * 7).toBeLessThanOrEqual(width);
        expect(Number(m[2])).toBeLessThan(height);
      }
    }
  });
});

const hasNats = spawnSync("sh", ["-c", "command -v nats-server"]).status === 0;

describe.skipIf(!hasNats)("JetStream as a pub/sub peer", () => {
  it("publishes to a file-storage stream per topic, reads it with ordered consumers, checks every message and removes the streams", async () => {
    const nats = await startNats();
    if ("skipped" in nats) throw new Error(nats.skipped);
    try {
      const tag = `js${Date.now()}`;
      for (const batch of [1, 10]) {
        const run = await runCase("nats-jetstream", nats.url, { ...spec, batch, window: batch > 1 ? 5 : 50 }, { tag: `${tag}b${batch}` });
        expect(run.problems).toEqual([]);
        expect(run.ok).toBe(true);
        expect(run.metrics.deliveriesPerSec).toBeGreaterThan(0);
      }
      const nc = await connect({ servers: natsServer(nats.url) });
      try {
        const jsm = await jetstreamManager(nc);
        expect(await jsm.streams.names().next()).toEqual([]);
      } finally {
        await nc.close();
      }
    } finally {
      await nats.stop();
    }
  });
});

describe("Dovetail rows on a local bus", () => {
  let bus: BusProcess;
  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus?.stop();
  });

  it("runs publishers and subscribers through the SDK and checks every message", async () => {
    for (const batch of [1, 10]) {
      const run = await runCase("dovetail-sdk", bus.url, { ...spec, batch, window: batch > 1 ? 5 : 50 }, { tag: `sdk${Date.now()}b${batch}` });
      expect(run.problems).toEqual([]);
      expect(run.ok).toBe(true);
      expect(run.metrics.deliveriesPerSec).toBeGreaterThan(0);
    }
  });
  it("runs the raw protocol on topics set to async and memory, checks every message, and the topics have that level", async () => {
    for (const [system, level] of [
      ["dovetail-async", "async"],
      ["dovetail-memory", "memory"],
    ] as const) {
      const tag = `${level}${Date.now()}`;
      const run = await runCase(system, bus.url, spec, { tag });
      expect(run.problems).toEqual([]);
      expect(run.ok).toBe(true);
      const info = (await (await fetch(`${bus.url}/v1/topics/bench.${tag}.t.0`)).json()) as { durability: string; head: number };
      expect(info).toMatchObject({ durability: level, head: spec.pubsPerTopic * (spec.warmup + spec.count) });
    }
  });
  it("fails loudly when the bus refuses a durability level", async () => {
    await expect(setDurability(bus.url, `bench.refused${Date.now()}`, "eventually" as Durability)).rejects.toThrow(/answered 400/);
  });
});
