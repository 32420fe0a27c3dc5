/**
 * The request-reply scenario (issue 14, "Speed"): request→reply round trips with 10 responders,
 * Dovetail (`bus.request` / `bus.serve` with a group) against nats.js request/reply on
 * nats-server (a queue group), in the same run.
 *
 * - sequential: one requester, one request at a time: round-trip p50 / p99.
 * - concurrent: one requester connection with `inFlight` requests outstanding at all times:
 *   requests/s, and the round trip under that load.
 * - burst: `burst` requests made at once (`Promise.all`), then the next burst once all are
 *   answered: what a fan-out to many agents looks like; the SDK sends a tick's requests in one
 *   frame.
 *
 * The 10 responders run in a process of their own (bench/lib/request-reply-responders.ts), each
 * on its own connection, answering each request with its data; the requester runs in the bench
 * process and checks every reply is the echo of its own request, or the run fails.
 * Issue 14's goals: p50 ≤ 2 × NATS, throughput ≥ 0.5 × NATS.
 *
 * @example
 * const sections = await runRequestReply({ config: requestReplyConfig(true), runs: 1, peerOf, tag, log });
 */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { connect as natsConnect } from "@nats-io/transport-node";
import { ROOT, type Peer } from "./peers.ts";
import type { CaseResult, ScenarioResult, SystemResult, Target } from "./report.ts";
import { aggregate, type RunOutcome } from "./runner.ts";
import type { Row } from "./scenarios.ts";
import type { SystemName } from "./systems.ts";

export interface RequestReplyConfig {
  responders: number;
  /** Sequential case: requests left out of the figures, then measured. */
  warmup: number;
  sequential: number;
  /** Concurrent case: requests in flight, and requests in all (after `warmup`). */
  inFlight: number;
  concurrent: number;
  /** Burst case: requests made at once, and bursts measured (after one warm-up burst). */
  burst: number;
  bursts: number;
  /** Bytes of filler in each request's data. */
  payloadBytes: number;
  timeoutMs: number;
}

export function requestReplyConfig(quick: boolean): RequestReplyConfig {
  return {
    responders: 10,
    warmup: quick ? 200 : 1000,
    sequential: quick ? 2000 : 10_000,
    inFlight: 100,
    concurrent: quick ? 20_000 : 100_000,
    burst: 1000,
    bursts: quick ? 20 : 100,
    payloadBytes: 100,
    timeoutMs: 10_000,
  };
}

const SYSTEMS = ["dovetail", "nats"] as const satisfies readonly SystemName[];
type RrSystem = (typeof SYSTEMS)[number];

const P50: Row = { metric: "p50Ms", label: "round trip p50", unit: "ms", higherIsBetter: false };
const P99: Row = { metric: "p99Ms", label: "round trip p99", unit: "ms", higherIsBetter: false };
const RPS: Row = { metric: "requestsPerSec", label: "requests/s", unit: "", higherIsBetter: true };

/** One way to send requests: resolves with the reply's data. */
interface Requester {
  request(data: { n: number; pad: string }): Promise<unknown>;
  close(): Promise<void>;
}

async function requester(system: RrSystem, url: string, topic: string, timeoutMs: number): Promise<Requester> {
  if (system === "dovetail") {
    const { connect } = await import("../../sdk/src/index.ts");
    const bus = connect(url);
    return { request: (data) => bus.request(topic, data, { timeoutMs }), close: () => bus.close() };
  }
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
  return {
    request: async (data) => (await nc.request(topic, JSON.stringify(data), { timeout: timeoutMs })).json(),
    close: () => nc.close(),
  };
}

function startResponders(system: RrSystem, url: string, topic: string, n: number): Promise<ChildProcess> {
  const proc = fork(path.join(ROOT, "bench/lib/request-reply-responders.ts"), [system, url, topic, String(n)], { stdio: "inherit" });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("responders not ready within 60 s")), 60_000);
    proc.once("message", () => {
      clearTimeout(timer);
      resolve(proc);
    });
    proc.once("exit", (code) => reject(new Error(`responders exited (${code})`)));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

type Mode = "sequential" | "concurrent" | "burst";

/** One run of one case. */
async function run(system: RrSystem, url: string, cfg: RequestReplyConfig, mode: Mode, tag: string): Promise<RunOutcome> {
  const concurrent = mode === "concurrent";
  const topic = `bench.rr.${tag}`;
  const problems: string[] = [];
  const responders = await startResponders(system, url, topic, cfg.responders);
  const client = await requester(system, url, topic, cfg.timeoutMs);
  const pad = "x".repeat(cfg.payloadBytes);
  const inFlight = concurrent ? cfg.inFlight : 1;
  const total = concurrent ? cfg.concurrent : cfg.sequential;
  const rtts: number[] = [];
  let next = 0;
  let measuredFrom = 0;
  let failures = 0;
  const one = async (measure: boolean) => {
    const n = next++;
    const t0 = performance.now();
    try {
      const reply = (await client.request({ n, pad })) as { n?: number };
      if (reply?.n !== n) problems.push(`request ${n} got the reply of ${JSON.stringify(reply?.n)}`);
      if (measure) rtts.push(performance.now() - t0);
    } catch (error) {
      if (failures++ < 3) problems.push(`request ${n}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  let elapsedMs = 0;
  try {
    for (let i = 0; i < cfg.warmup; i++) await one(false);
    if (mode === "burst") await Promise.all(Array.from({ length: cfg.burst }, () => one(false)));
    measuredFrom = performance.now();
    if (mode === "burst") {
      for (let b = 0; b < cfg.bursts; b++) await Promise.all(Array.from({ length: cfg.burst }, () => one(true)));
    } else {
      const stop = cfg.warmup + total;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < stop) await one(true);
        }),
      );
    }
    elapsedMs = performance.now() - measuredFrom;
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  await client.close().catch(() => undefined);
  responders.kill("SIGKILL");
  rtts.sort((a, b) => a - b);
  const metrics: Record<string, number> =
    rtts.length > 0 && elapsedMs > 0
      ? { p50Ms: percentile(rtts, 50), p99Ms: percentile(rtts, 99), requestsPerSec: (rtts.length / elapsedMs) * 1000, requests: rtts.length }
      : {};
  if (failures > 0) problems.push(`${failures} requests failed`);
  return { ok: problems.length === 0, problems, metrics };
}

export async function runRequestReply(o: {
  config: RequestReplyConfig;
  runs: number;
  peerOf: (system: SystemName) => Peer | null;
  tag: () => string;
  log: (line: string) => void;
}): Promise<ScenarioResult[]> {
  const cfg = o.config;
  const live = SYSTEMS.filter((s) => o.peerOf(s));
  const scenario: ScenarioResult = {
    id: "request-reply",
    title: `Request/reply (issue 14): ${cfg.responders} responders in one group`,
    description:
      `${cfg.responders} responders (one process, each on its own connection, in one group: Dovetail \`bus.serve(topic, echo, { group })\` on plain sockets; NATS a queue subscription answering with \`msg.respond\`), each request going to one of them. ` +
      `One requester connection (Dovetail \`bus.request\`; nats.js \`nc.request\`), ${cfg.payloadBytes}-byte data, every reply checked to be its own request's echo. ` +
      `sequential: one request at a time (${cfg.warmup} warm-up, then ${cfg.sequential}); concurrent: ${cfg.inFlight} requests in flight (${cfg.concurrent} measured); burst: ${cfg.burst} requests at once, the next burst when all are answered (${cfg.bursts} bursts measured; the SDK sends a tick's requests in one frame, the topic hands each responder its share in one frame, responders reply in batches). Round trip = from the call to its resolution. ` +
      "Dovetail requests are not stored (not durable). Issue 14's goals: p50 ≤ 2 × NATS (sequential), requests/s ≥ 0.5 × NATS (concurrent).",
    systems: [...live],
    rows: [P50, P99, RPS],
    chart: "bars",
    chartMetric: "requestsPerSec",
    cases: [],
  };
  for (const [id, label] of [
    ["sequential", "1 request in flight"],
    ["concurrent", `${cfg.inFlight} requests in flight`],
    ["burst", `bursts of ${cfg.burst} requests`],
  ] as const) {
    const outcomes = new Map<RrSystem, RunOutcome[]>(live.map((s) => [s, []]));
    for (let round = 0; round < o.runs; round++) {
      for (const system of live) {
        const t = Date.now();
        const r = await run(system, o.peerOf(system)!.url, cfg, id, o.tag()).catch(
          (e: Error): RunOutcome => ({ ok: false, problems: [e.message], metrics: {} }),
        );
        outcomes.get(system)!.push(r);
        o.log(
          `request-reply/${id} ${system} run ${round + 1}: ${r.ok ? "ok" : `FAILED (${r.problems.slice(0, 2).join("; ")})`} ` +
            `p50 ${r.metrics.p50Ms?.toFixed(3)} ms p99 ${r.metrics.p99Ms?.toFixed(3)} ms ${Math.round(r.metrics.requestsPerSec ?? 0)} req/s (${Date.now() - t} ms)`,
        );
      }
    }
    const results: Record<string, SystemResult> = {};
    for (const [s, runs] of outcomes) results[s] = aggregate(runs);
    scenario.cases.push({ id, label, spec: { ...cfg, mode: id }, results });
  }
  scenario.targets = [
    ratioGoal(scenario.cases[0]!, "p50Ms", "dovetail p50 ÷ NATS p50 (sequential)", 2, false),
    ratioGoal(scenario.cases[1]!, "requestsPerSec", "dovetail requests/s ÷ NATS requests/s (concurrent)", 0.5, true),
    ratioGoal(scenario.cases[2]!, "requestsPerSec", "dovetail requests/s ÷ NATS requests/s (bursts)", 0.5, true),
  ];
  return [scenario];
}

/** Dovetail's figure over NATS's, against the issue's bound. */
function ratioGoal(c: CaseResult, metric: string, label: string, bound: number, higherIsBetter: boolean): Target {
  const base = { label, target: bound, unit: "×", higherIsBetter };
  const ours = c.results.dovetail;
  const theirs = c.results.nats;
  if (!ours?.ok || !theirs?.ok)
    return { ...base, value: null, met: false, note: [ours, theirs].flatMap((r) => r?.runs.find((x) => !x.ok)?.problems ?? [])[0] ?? "not run" };
  const a = ours.median[metric];
  const b = theirs.median[metric];
  if (a === undefined || b === undefined || b === 0) return { ...base, value: null, met: null };
  const value = a / b;
  return { ...base, value, met: higherIsBetter ? value >= bound : value <= bound, note: `${a.toPrecision(4)} ÷ ${b.toPrecision(4)}` };
}
