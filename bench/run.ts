/**
 * `npm run bench` (full) and `npm run bench -- --quick` (CI smoke, a minute or two): starts the
 * peers and the Dovetail bus on loopback, runs every workload of issue 7 against every system
 * in separate publisher and subscriber processes, checks counts and order, and writes
 * bench/results/<timestamp>.json, latest.json, latest.md and one SVG chart per scenario.
 *
 * Options: --quick; --runs N (runs per case, median reported); --only a,b (scenario ids, plus
 * `work-queue`, `request-reply`, `patterns`, `cold-start`, `many-topics` and `external`); --systems a,b; --out DIR; --render FILE.json (only rewrite
 * latest.md and the charts from an existing results file, measuring nothing); --verbose-bus
 * (print wrangler/workerd output, to see why the bus closed a socket).
 *
 * @example
 * npm run bench -- --quick --only throughput,latency
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { coldStartDovetail, coldStartNats, coldStartRedis } from "./lib/cold-start.ts";
import { manyTopicsConfig, runManyTopics } from "./lib/many-topics.ts";
import {
  ensureSystemPackages,
  natsVersion,
  redisVersion,
  ROOT,
  startDovetail,
  startDurableStreamsReference,
  startNats,
  startRedis,
  workerdVersion,
  wranglerVersion,
  type Peer,
  type PeerResult,
} from "./lib/peers.ts";
import { renderCharts, renderMarkdown, type BenchResults, type CaseResult, type ScenarioResult } from "./lib/report.ts";
import { aggregate, runCase, type RunOutcome } from "./lib/runner.ts";
import { ALL_SYSTEMS, EDGE_TARGETS, scenarios } from "./lib/scenarios.ts";
import type { SystemName } from "./lib/systems.ts";
import { runWorkQueue, workQueueConfig } from "./lib/work-queue.ts";
import { patternsConfig, runPatterns } from "./lib/patterns.ts";
import { requestReplyConfig, runRequestReply } from "./lib/request-reply.ts";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    only: { type: "string" },
    systems: { type: "string" },
    out: { type: "string", default: path.join(ROOT, "bench/results") },
    render: { type: "string" },
    "verbose-bus": { type: "boolean", default: false },
  },
});
const quick = args.quick!;
const runsPerCase = Number(args.runs ?? (quick ? 1 : 3));
const only = args.only ? new Set(args.only.split(",")) : null;
const wantedSystems = new Set((args.systems?.split(",") ?? ALL_SYSTEMS) as SystemName[]);
const unknownSystems = [...wantedSystems].filter((s) => !ALL_SYSTEMS.includes(s));
if (unknownSystems.length) {
  console.error(`bench: unknown system(s) ${unknownSystems.join(", ")}; known: ${ALL_SYSTEMS.join(", ")}`);
  process.exit(2);
}
const outDir = path.resolve(args.out!);
const wants = (id: string) => !only || only.has(id);
/** Idle time before the hibernated-topic delivery (the runtime hibernates after ~10 s idle). */
const HIBERNATE_IDLE_MS = 12_000;
const EXTERNAL_TIMEOUT_MS = quick ? 120_000 : 600_000;

const log = (text: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}`);

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "not installed";
  }
}

function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverage: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" "),
    node: process.version,
    workerd: workerdVersion(),
    wrangler: wranglerVersion(),
    redis: redisVersion(),
    nats: natsVersion(),
    durableStreamsServer: packageVersion("@durable-streams/server"),
  };
}

/** Run a sibling benchmark (`--url URL [--quick]`) and take the JSON on its last stdout line. */
async function runExternal(file: string, url: string | null, env: Record<string, string>): Promise<BenchResults["external"][string]> {
  const abs = path.join(ROOT, file);
  if (!existsSync(abs)) return { status: "not present", file };
  if (!url) return { status: "failed", reason: "no Dovetail bus to point it at", file };
  const argv = [abs, "--url", url, ...(quick ? ["--quick"] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, EXTERNAL_TIMEOUT_MS);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const last = stdout.trim().split("\n").at(-1) ?? "";
      try {
        const figures = JSON.parse(last) as unknown;
        if (code !== 0) resolve({ status: "failed", reason: `exited with ${code ?? signal}`, file, figures });
        else resolve({ status: "ok", file, figures });
      } catch {
        resolve({ status: "failed", reason: `exited with ${code ?? signal}, no JSON on the last line: ${(stderr || stdout).trim().slice(-400)}`, file });
      }
    });
  });
}

function writeReport(results: BenchResults): void {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, "latest.md"), renderMarkdown(results));
  for (const chart of renderCharts(results)) writeFileSync(path.join(outDir, chart.file), chart.svg);
}

async function main(): Promise<void> {
  if (args.render) {
    writeReport(JSON.parse(readFileSync(args.render, "utf8")) as BenchResults);
    log(`rewrote latest.md and charts in ${path.relative(ROOT, outDir)} from ${args.render}`);
    return;
  }
  const started = new Date();
  const machine = machineInfo();
  log(`${quick ? "quick" : "full"} run, ${runsPerCase} run(s) per case, ${machine.cpus} cores, load ${machine.loadAverage}`);
  const missing = ensureSystemPackages();
  if (missing.length) log(`missing Debian packages (not root, or install failed): ${missing.join(", ")}`);

  const peers: Record<string, PeerResult> = {};
  const needRedis = [...wantedSystems].some((s) => s === "redis-pubsub" || s === "redis-streams");
  const [dovetail, redis, redisAof, nats] = await Promise.all([
    [...wantedSystems].some((s) => s.startsWith("dovetail"))
      ? startDovetail({ verbose: args["verbose-bus"]! })
      : Promise.resolve({ skipped: "not selected" } as PeerResult),
    needRedis ? startRedis({ durable: false }) : Promise.resolve({ skipped: "not selected" } as PeerResult),
    wantedSystems.has("redis-streams-aof") ? startRedis({ durable: true }) : Promise.resolve({ skipped: "not selected" } as PeerResult),
    wantedSystems.has("nats") || wantedSystems.has("nats-jetstream") ? startNats() : Promise.resolve({ skipped: "not selected" } as PeerResult),
  ]);
  const peerOf: Record<SystemName, PeerResult> = {
    dovetail,
    "dovetail-sdk": dovetail,
    "dovetail-async": dovetail,
    "dovetail-memory": dovetail,
    "redis-pubsub": redis,
    "redis-streams": redis,
    "redis-streams-aof": redisAof,
    nats,
    "nats-jetstream": nats,
  };
  Object.assign(peers, { dovetail, redis, redisAof, nats });
  const systems: BenchResults["systems"] = {};
  for (const sys of ALL_SYSTEMS) {
    const p = peerOf[sys];
    if (!wantedSystems.has(sys)) systems[sys] = { status: "skipped", reason: "not selected (--systems)" };
    else if ("skipped" in p) systems[sys] = { status: "skipped", reason: p.skipped };
    else systems[sys] = { status: "ok", version: p.version };
    log(`${sys}: ${systems[sys]!.status === "ok" ? `up at ${(p as Peer).url}` : `skipped: ${systems[sys]!.reason}`}`);
  }

  const results: BenchResults = {
    schema: 1,
    startedAt: started.toISOString(),
    finishedAt: "",
    quick,
    runsPerCase,
    machine,
    systems,
    scenarios: [],
    edgeTargets: [],
    coldStart: {},
    external: {},
  };

  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(Object.values(peers).map((p) => ("skipped" in p ? undefined : p.stop().catch(() => {}))));
  };
  process.on("SIGINT", () => void stopAll().finally(() => process.exit(130)));

  try {
    let runCounter = 0;
    for (const scenario of scenarios(quick, only, args.systems !== undefined)) {
      if (!wants(scenario.id)) continue;
      const live = scenario.systems.filter((s) => systems[s]?.status === "ok");
      const sr: ScenarioResult = {
        id: scenario.id,
        title: scenario.title,
        description: scenario.description,
        systems: live,
        rows: scenario.rows,
        chart: scenario.chart,
        ...(scenario.chartMetric ? { chartMetric: scenario.chartMetric } : {}),
        cases: [],
      };
      for (const spec of scenario.cases) {
        const outcomes: Record<string, RunOutcome[]> = Object.fromEntries(live.map((s) => [s, []]));
        // Interleave systems within each round so background noise falls on all of them alike.
        for (let round = 0; round < runsPerCase; round++) {
          for (const sys of live) {
            const peer = peerOf[sys] as Peer;
            const tag = `${started.getTime().toString(36)}${(runCounter++).toString(36)}`;
            const t = Date.now();
            const outcome = await runCase(sys, peer.url, spec, { tag, serverRss: () => peer.rssBytes() });
            outcomes[sys]!.push(outcome);
            const m = outcome.metrics;
            log(
              `${scenario.id}/${spec.id} ${sys} run ${round + 1}: ${outcome.ok ? "ok" : `FAILED (${outcome.problems.slice(0, 2).join("; ")})`} ` +
                `${m.deliveriesPerSec ? `${Math.round(m.deliveriesPerSec)} deliveries/s ` : ""}${m.p50Ms !== undefined ? `p50 ${m.p50Ms.toFixed(2)} ms p99 ${m.p99Ms!.toFixed(2)} ms ` : ""}(${Date.now() - t} ms)`,
            );
          }
        }
        const cr: CaseResult = { id: spec.id, label: spec.label, spec, results: {} };
        for (const sys of live) cr.results[sys] = aggregate(outcomes[sys]!);
        sr.cases.push(cr);
      }
      results.scenarios.push(sr);
    }
    if (results.scenarios.some((s) => s.id === "edge-core")) {
      const cases = results.scenarios.filter((s) => ["edge-core", "throughput", "latency"].includes(s.id)).flatMap((s) => s.cases);
      results.edgeTargets = EDGE_TARGETS.map((t) => {
        const r = cases.find((c) => c.id === t.case)?.results.dovetail;
        const base = { label: t.label, target: t.target, unit: t.unit, higherIsBetter: t.higherIsBetter };
        if (!r) return { ...base, value: null, met: null };
        // A case whose runs failed their checks (or could not keep up) did not meet the target.
        if (!r.ok) return { ...base, value: null, met: false, note: r.runs.find((run) => !run.ok)?.problems[0] ?? "failed" };
        const value = r.median[t.metric] ?? null;
        return { ...base, value, met: value === null ? null : t.higherIsBetter ? value >= t.target : value <= t.target };
      });
    }

    if (wants("work-queue")) {
      // Consumer groups against Redis Streams groups and JetStream (issue 12), while the peers are up.
      const sections = await runWorkQueue({
        config: workQueueConfig(quick),
        runs: runsPerCase,
        peerOf: (sys) => (systems[sys]?.status === "ok" ? (peerOf[sys] as Peer) : null),
        tag: () => `${started.getTime().toString(36)}${(runCounter++).toString(36)}`,
        log,
      });
      results.scenarios.push(...sections);
    }

    if (wants("request-reply")) {
      // Request/reply with 10 responders against nats.js on nats-server (issue 14).
      const sections = await runRequestReply({
        config: requestReplyConfig(quick),
        runs: runsPerCase,
        peerOf: (sys) => (systems[sys]?.status === "ok" ? (peerOf[sys] as Peer) : null),
        tag: () => `${started.getTime().toString(36)}${(runCounter++).toString(36)}`,
        log,
      });
      results.scenarios.push(...sections);
    }

    if (wants("patterns")) {
      // Pattern subscriptions over many topics against a NATS wildcard subscription (issue 14).
      const sections = await runPatterns({
        config: patternsConfig(quick),
        runs: runsPerCase,
        peerOf: (sys) => (systems[sys]?.status === "ok" ? (peerOf[sys] as Peer) : null),
        tag: () => `${started.getTime().toString(36)}${(runCounter++).toString(36)}`,
        log,
      });
      results.scenarios.push(...sections);
    }

    if (wants("external")) {
      const busUrl = "skipped" in dovetail ? null : dovetail.url;
      log("external: bench/sdk-bench.ts");
      results.external.sdk = await runExternal("bench/sdk-bench.ts", busUrl, {});
      const ref = existsSync(path.join(ROOT, "bench/streams-bench.ts")) ? await startDurableStreamsReference() : null;
      log(
        `external: bench/streams-bench.ts${ref ? ("skipped" in ref ? ` (reference server skipped: ${ref.skipped})` : ` (reference server at ${ref.url})`) : ""}`,
      );
      // The reference server's URL goes in the environment: the sibling takes only --url/--quick.
      results.external.streams = await runExternal(
        "bench/streams-bench.ts",
        busUrl,
        ref && !("skipped" in ref) ? { DURABLE_STREAMS_REFERENCE_URL: ref.url } : {},
      );
      // The same client workload against the reference server (its own process), side by side.
      if (ref && !("skipped" in ref)) {
        results.external["streams-reference"] = await runExternal("bench/streams-bench.ts", ref.url, {});
        await ref.stop();
      }
      log("external: local-node/bench/ring-bench.ts");
      results.external.ring = await runExternal("local-node/bench/ring-bench.ts", busUrl, {});
      for (const [name, e] of Object.entries(results.external)) log(`external ${name}: ${e.status}${e.reason ? ` (${e.reason.slice(0, 200)})` : ""}`);
    }
  } finally {
    await stopAll();
  }

  if (wants("cold-start")) {
    // After the other peers are down, so the machine is as quiet as this run can make it.
    log("cold start: dovetail");
    results.coldStart.dovetail = await coldStartDovetail({ idleMs: quick ? 0 : HIBERNATE_IDLE_MS }).catch((e: Error) => ({ error: e.message }));
    if (!missing.includes("redis-server")) results.coldStart["redis-aof"] = await coldStartRedis().catch((e: Error) => ({ error: e.message }));
    if (!missing.includes("nats-server")) results.coldStart.nats = await coldStartNats().catch((e: Error) => ({ error: e.message }));
    log(`cold start: ${JSON.stringify(results.coldStart)}`);
  }

  if (wants("many-topics") && process.platform !== "linux") log("many topics: skipped (reads workerd's memory and descriptors from /proc: Linux only)");
  else if (wants("many-topics")) {
    // On a bus of its own, after the others are down: 20,000 topics (500 with --quick) in waves.
    log("many topics: creating topics in waves on a fresh bus");
    results.manyTopics = await runManyTopics(manyTopicsConfig(quick), log, { verbose: args["verbose-bus"]! }).catch((e: Error) => ({ error: e.message }));
    log(
      `many topics: ${"error" in results.manyTopics ? `error: ${results.manyTopics.error}` : results.manyTopics.ok ? "healthy" : `FAILED: ${results.manyTopics.problems.join("; ")}`}`,
    );
  }

  results.finishedAt = new Date().toISOString();
  mkdirSync(outDir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, "-");
  const json = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(path.join(outDir, `${stamp}.json`), json);
  writeFileSync(path.join(outDir, "latest.json"), json);
  writeReport(results);
  const failed = results.scenarios.flatMap((s) =>
    s.cases.flatMap((c) =>
      Object.entries(c.results)
        .filter(([, r]) => !r.ok)
        .map(([sys]) => `${s.id}/${c.id}/${sys}`),
    ),
  );
  if (results.manyTopics && ("error" in results.manyTopics || !results.manyTopics.ok)) failed.push("many-topics");
  log(
    `wrote ${path.relative(ROOT, path.join(outDir, `${stamp}.json`))}, latest.json, latest.md and ${results.scenarios.length} charts in ${Math.round((Date.now() - started.getTime()) / 1000)} s`,
  );
  if (failed.length) {
    log(`FAILED cases (counts/order/timeouts): ${failed.join(", ")}`);
    process.exitCode = 1;
  }
}

await main();
