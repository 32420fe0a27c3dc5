/**
 * The work-queue scenario (issue 12, "Speed"): consumer groups against what a user would pick
 * instead, in the same run. Three parts, each a section of the report:
 *
 * 1. Acked throughput: 1 topic, 10 workers (over 2 processes, each worker on its own
 *    connection) acking every 100-byte message; a backlog published first, and the same count
 *    published while the workers consume. acked msg/s = messages ÷ (last ack confirmed − first
 *    delivery). Every message must be acked exactly once (distinct sequence numbers counted over
 *    all workers) and the server must have nothing pending after, else the run fails.
 * 2. Redelivery after a worker dies: a worker process holding jobs is killed with SIGKILL; the
 *    time until another worker has them all, next to the ack wait every system is given.
 * 3. Group delivery latency against a plain subscription (Dovetail only, 1,000 msg/s):
 *    publish → deliver p50/p99 of a plain subscription and of a group member, through the SDK
 *    and through raw frames, with issue 12's goal (group p50 ≤ 1.2 × plain p50) checked.
 *
 * @example
 * const sections = await runWorkQueue({ config: workQueueConfig(true), runs: 1, peerOf, tag, log });
 */
import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./peers.ts";
import type { CaseResult, ScenarioResult, SystemResult, Target } from "./report.ts";
import { aggregate, runCase, type CaseSpec, type Metrics, type RunOutcome } from "./runner.ts";
import type { Row } from "./scenarios.ts";
import type { DovetailVariant, SystemName } from "./systems.ts";
import { createQueue, queueState, REDIS_CLAIM_EVERY_MS, type QueueClient, type QueueEndpoint } from "./work-queue-clients.ts";
import type { PublisherConfig, PublisherDone, QueueJobReport, QueueWorkerConfig, QueueWorkerDone } from "../worker.ts";

export interface WorkQueueConfig {
  workers: number;
  /** Processes the workers are spread over (each worker keeps its own connection). */
  procs: number;
  /** Jobs a worker holds unacked at most (Dovetail maxAckPending, XREADGROUP COUNT, JetStream max_messages). */
  prefetch: number;
  /** In flight to the whole group at most (Dovetail group maxAckPending, JetStream max_ack_pending): never the limit here. */
  groupMaxAckPending: number;
  /** Messages of the backlog case, and of the case published while the workers consume. */
  backlog: number;
  concurrent: number;
  /** Ack wait of the throughput runs: long, so no job is redelivered by a slow ack. */
  throughputAckWaitMs: number;
  timeoutMs: number;
  /** Publishing: messages per call and calls in flight (the backlog and the concurrent publisher). */
  publishBatch: number;
  publishWindow: number;
  redelivery: { jobs: number; ackWaitMs: number };
  latency: CaseSpec;
}

export function workQueueConfig(quick: boolean): WorkQueueConfig {
  const q = <T>(quickValue: T, fullValue: T) => (quick ? quickValue : fullValue);
  const rate = 1000;
  const seconds = q(3, 10);
  const warmupSeconds = q(1, 2);
  return {
    workers: 10,
    procs: 2,
    prefetch: 100,
    groupMaxAckPending: 10_000,
    backlog: q(10_000, 100_000),
    concurrent: q(10_000, 100_000),
    throughputAckWaitMs: 60_000,
    timeoutMs: q(60_000, 240_000),
    publishBatch: 100,
    publishWindow: 10,
    redelivery: { jobs: 20, ackWaitMs: q(2000, 5000) },
    latency: {
      id: "group-latency",
      label: `${rate.toLocaleString("en-US")} msg/s, 1 publisher → 1 consumer`,
      topics: 1,
      pubsPerTopic: 1,
      subsPerTopic: 1,
      pubProcs: 1,
      subProcs: 1,
      warmup: rate * warmupSeconds,
      count: rate * seconds,
      batch: 1,
      window: 100_000,
      ratePerSec: rate,
      timeoutMs: (seconds + warmupSeconds) * 3000 + 10_000,
    },
  };
}

/** Work-queue clients in report order; which server each runs against. */
export const QUEUE_CLIENTS: { client: QueueClient; server: SystemName }[] = [
  { client: "dovetail", server: "dovetail" },
  { client: "dovetail-plain", server: "dovetail" },
  { client: "dovetail-raw", server: "dovetail" },
  { client: "redis-streams", server: "redis-streams" },
  { client: "redis-streams-aof", server: "redis-streams-aof" },
  { client: "nats-jetstream", server: "nats-jetstream" },
];
/** The redelivery case: Dovetail's variants all take jobs back the same way (socket closed), so only the SDK one runs. */
const REDELIVERY_CLIENTS: QueueClient[] = ["dovetail", "redis-streams", "redis-streams-aof", "nats-jetstream"];
const LATENCY_VARIANTS: DovetailVariant[] = ["dovetail-subscribe", "dovetail-group", "dovetail-raw-subscribe", "dovetail-raw-group"];
/** Issue 12: group delivery adds at most 20 % to the publish → deliver p50 of a plain subscription. */
const GROUP_P50_MAX_RATIO = 1.2;

export interface WorkQueuePeer {
  url: string;
  /** CPU time of the server process(es) so far, ms. */
  cpuMs(): number;
}

export interface WorkQueueOptions {
  config: WorkQueueConfig;
  runs: number;
  /** The running server of a system, or null (skipped / not selected). */
  peerOf: (server: SystemName) => WorkQueuePeer | null;
  /** A fresh tag for each run (part of every topic name). */
  tag: () => string;
  log: (line: string) => void;
}

const ACKED: Row = { metric: "ackedPerSec", label: "acked", unit: "msg/s", higherIsBetter: true };
const PUB_RATE: Row = { metric: "publishMsgPerSec", label: "publish rate", unit: "msg/s", higherIsBetter: true };
const US_PER_ACK: Row = { metric: "usPerAck", label: "µs per acked message", unit: "µs", higherIsBetter: false };
const SERVER_CPU: Row = { metric: "serverCpuUsPerAck", label: "server CPU per acked message", unit: "µs", higherIsBetter: false };
const WORKER_CPU: Row = { metric: "workerCpuUsPerAck", label: "worker CPU per acked message", unit: "µs", higherIsBetter: false };
const REDELIVERED: Row = { metric: "redeliveries", label: "redeliveries", unit: "deliveries", higherIsBetter: false, ratio: false };
const REDELIVERY_ALL: Row = { metric: "redeliveryMs", label: "all held jobs at another worker", unit: "ms", higherIsBetter: false };
const REDELIVERY_FIRST: Row = { metric: "firstRedeliveryMs", label: "first held job at another worker", unit: "ms", higherIsBetter: false };
const HELD_BEFORE: Row = { metric: "heldBeforeKillMs", label: "held before the kill", unit: "ms", higherIsBetter: false, ratio: false };
const ACK_WAIT: Row = { metric: "ackWaitMs", label: "ack wait configured", unit: "ms", higherIsBetter: false, ratio: false };
const LAT_ROWS: Row[] = [
  { metric: "deliveriesPerSec", label: "delivered rate", unit: "msg/s", higherIsBetter: true },
  { metric: "p50Ms", label: "p50", unit: "ms", higherIsBetter: false },
  { metric: "p90Ms", label: "p90", unit: "ms", higherIsBetter: false },
  { metric: "p99Ms", label: "p99", unit: "ms", higherIsBetter: false },
  { metric: "p999Ms", label: "p99.9", unit: "ms", higherIsBetter: false },
  { metric: "maxMs", label: "max", unit: "ms", higherIsBetter: false },
  { metric: "serverCpuUsPerMsg", label: "server CPU per message", unit: "µs", higherIsBetter: false },
];

export async function runWorkQueue(o: WorkQueueOptions): Promise<ScenarioResult[]> {
  const cfg = o.config;
  const live = QUEUE_CLIENTS.filter((c) => o.peerOf(c.server) !== null);
  const peer = (client: QueueClient) => o.peerOf(QUEUE_CLIENTS.find((c) => c.client === client)!.server)!;
  const sections: ScenarioResult[] = [];
  const logRun = (what: string, client: string, round: number, r: RunOutcome, ms: number, figures: string) =>
    o.log(`${what} ${client} run ${round + 1}: ${r.ok ? "ok" : `FAILED (${r.problems.slice(0, 2).join("; ")})`} ${r.ok ? figures : ""}(${ms} ms)`);

  // 1. Acked throughput.
  const throughputCases: { id: "backlog" | "concurrent"; label: string; count: number }[] = [
    { id: "backlog", label: `backlog of ${cfg.backlog.toLocaleString("en-US")} published first`, count: cfg.backlog },
    { id: "concurrent", label: `${cfg.concurrent.toLocaleString("en-US")} published while consuming`, count: cfg.concurrent },
  ];
  const throughput: ScenarioResult = {
    id: "work-queue",
    title: `Work queue (issue 12): ${cfg.workers} workers acking every message`,
    description:
      `1 topic (stream), ${cfg.workers} workers over ${cfg.procs} processes, each worker on its own connection holding at most ${cfg.prefetch} unacked jobs, acking every 100-byte message. ` +
      "acked msg/s = messages ÷ (last ack confirmed − first delivery); every message must be acked exactly once (distinct ids over all workers) and the server must have nothing pending afterwards, or the run fails. " +
      `Published with ${cfg.publishBatch} messages per call, ${cfg.publishWindow} calls in flight (Dovetail publish frames; Redis XADD pipelines; JetStream js.publish awaiting each PubAck). ` +
      "dovetail = the SDK (`bus.consume` with `maxAckPending`, `job.ack()` per job; the SDK sends one tick's acks in one frame; each ack resolves once stored), hibernatable consumer sockets (the SDK default); dovetail-plain = the same with `hibernate: false`; dovetail-raw = raw frames, one `settle` per `jobs` frame, hibernatable socket. " +
      `Redis: XREADGROUP COUNT ${cfg.prefetch} BLOCK 100, one XACK per entry pipelined per batch, XAUTOCLAIM every ${REDIS_CLAIM_EVERY_MS} ms (acked in memory; the AOF instance fsyncs every second). ` +
      `JetStream: work-queue stream (file storage), one durable pull consumer shared by all workers, \`consume({ max_messages: ${cfg.prefetch} })\`, \`m.ack()\` (not confirmed to the client: time of the call, then the server is checked to have no ack pending). ` +
      "Dovetail confirms an ack once it is durable in SQLite. No warm-up: each run is a fresh topic and group. " +
      "CPU per acked message: CPU time (user + system, from /proc) of the server process(es) (workerd; redis-server; nats-server) and of the worker processes, from the start of consuming until every ack is in, ÷ messages; in the concurrent case the server's includes taking the publishes.",
    systems: live.map((c) => c.client),
    rows: [ACKED, US_PER_ACK, SERVER_CPU, WORKER_CPU, PUB_RATE, REDELIVERED],
    chart: "bars",
    chartMetric: "ackedPerSec",
    cases: [],
  };
  for (const tc of throughputCases) {
    const outcomes = new Map<QueueClient, RunOutcome[]>(live.map((c) => [c.client, []]));
    for (let round = 0; round < o.runs; round++) {
      for (const { client } of live) {
        const t = Date.now();
        const r = await throughputRun(client, peer(client), tc.id, tc.count, cfg, o.tag());
        outcomes.get(client)!.push(r);
        logRun(`work-queue/${tc.id}`, client, round, r, Date.now() - t, `${Math.round(r.metrics.ackedPerSec ?? 0)} acked/s `);
      }
    }
    throughput.cases.push(caseResult(tc.id, tc.label, { count: tc.count, ...cfg, latency: undefined }, outcomes));
  }
  throughput.targets = throughputCases.map((tc) => fasterPeerTarget(throughput.cases.find((c) => c.id === tc.id)!, tc.label));
  sections.push(throughput);

  // 2. Redelivery after a worker dies.
  const redeliveryClients = live.filter((c) => REDELIVERY_CLIENTS.includes(c.client));
  const { jobs, ackWaitMs } = cfg.redelivery;
  const redelivery: ScenarioResult = {
    id: "work-queue-redelivery",
    title: "Work queue (issue 12): redelivery after a worker is killed",
    description:
      `A worker process takes ${jobs} jobs and never acks them; a second worker joins; the first is killed with SIGKILL. Time from the kill until the second worker has received all ${jobs} (and the first of them), with the same ack wait (${ackWaitMs} ms) configured everywhere. ` +
      `Dovetail takes a member's jobs back when its socket closes; JetStream redelivers when \`ack_wait\` runs out (counted from the delivery); Redis never redelivers by itself: the surviving worker runs XAUTOCLAIM with min-idle = the ack wait every ${REDIS_CLAIM_EVERY_MS} ms, which is what a user writes. ` +
      "The kill comes shortly after the jobs were taken (the row 'held before the kill'), so systems that wait for the ack wait show about ack wait − held.",
    systems: redeliveryClients.map((c) => c.client),
    rows: [REDELIVERY_ALL, REDELIVERY_FIRST, HELD_BEFORE, ACK_WAIT],
    chart: "bars",
    chartMetric: "redeliveryMs",
    cases: [],
  };
  {
    const outcomes = new Map<QueueClient, RunOutcome[]>(redeliveryClients.map((c) => [c.client, []]));
    for (let round = 0; round < o.runs; round++) {
      for (const { client } of redeliveryClients) {
        const t = Date.now();
        const r = await redeliveryRun(client, peer(client).url, cfg, o.tag());
        outcomes.get(client)!.push(r);
        logRun("work-queue/redelivery", client, round, r, Date.now() - t, `all ${r.metrics.redeliveryMs?.toFixed(0)} ms after the kill `);
      }
    }
    redelivery.cases.push(caseResult("kill", `${jobs} jobs held, ack wait ${ackWaitMs / 1000} s`, { jobs, ackWaitMs }, outcomes));
    const ours = redelivery.cases[0]!.results.dovetail;
    if (ours) {
      redelivery.targets = [
        target(ours, "redeliveryMs", `dovetail: a killed worker's jobs at another worker, well within the ack wait`, ackWaitMs, "ms", false),
      ];
    }
  }
  sections.push(redelivery);

  // 3. Group delivery latency against a plain subscription.
  const dovetail = o.peerOf("dovetail");
  if (dovetail) {
    const spec = cfg.latency;
    const latency: ScenarioResult = {
      id: "work-queue-latency",
      title: "Work queue (issue 12): group delivery against a plain subscription",
      description: `Dovetail only: one publisher at a fixed ${spec.ratePerSec} msg/s (unbatched, raw publish frames) for ${spec.count / spec.ratePerSec!} s after ${spec.warmup / spec.ratePerSec!} s of warm-up, and one consumer: a plain subscription (\`bus.subscribe\`, from offset 0) or the only member of a group (\`bus.consume\`, acking each job), through the SDK and through raw frames (raw subscribe / consume + one settle per jobs frame); all on hibernatable sockets. Latency from each message's intended send time to its delivery, as in the latency scenario; server CPU = workerd's CPU time over the run ÷ messages published (ingest and delivery, warm-up included). Issue 12's goal: a group adds at most ${Math.round((GROUP_P50_MAX_RATIO - 1) * 100)} % to the p50.`,
      systems: LATENCY_VARIANTS,
      rows: LAT_ROWS,
      chart: "latency",
      cases: [],
    };
    const outcomes = new Map<string, RunOutcome[]>(LATENCY_VARIANTS.map((v) => [v, []]));
    for (let round = 0; round < o.runs; round++) {
      for (const v of LATENCY_VARIANTS) {
        const t = Date.now();
        const r = await runCase(v, dovetail.url, spec, { tag: o.tag(), serverCpu: () => dovetail.cpuMs() });
        r.metrics.load1 = os.loadavg()[0]!;
        outcomes.get(v)!.push(r);
        logRun("work-queue/latency", v, round, r, Date.now() - t, `p50 ${r.metrics.p50Ms?.toFixed(2)} ms p99 ${r.metrics.p99Ms?.toFixed(2)} ms `);
      }
    }
    const c = caseResult(spec.id, spec.label, spec, outcomes);
    latency.cases.push(c);
    latency.targets = [
      ratioTarget(c, "dovetail-group", "dovetail-subscribe", "p50Ms", "SDK: group member p50 ÷ plain subscription p50"),
      ratioTarget(c, "dovetail-raw-group", "dovetail-raw-subscribe", "p50Ms", "raw frames: group member p50 ÷ plain subscription p50"),
    ];
    sections.push(latency);
  }
  return sections;
}

function caseResult<K extends string>(id: string, label: string, spec: unknown, outcomes: Map<K, RunOutcome[]>): CaseResult {
  const results: Record<string, SystemResult> = {};
  for (const [k, runs] of outcomes) results[k] = aggregate(runs);
  return { id, label, spec, results };
}

function target(r: SystemResult, metric: string, label: string, goal: number, unit: string, higherIsBetter: boolean): Target {
  const base = { label, target: goal, unit, higherIsBetter };
  if (!r.ok) return { ...base, value: null, met: false, note: r.runs.find((x) => !x.ok)?.problems[0] ?? "failed" };
  const value = r.median[metric] ?? null;
  return { ...base, value, met: value === null ? null : higherIsBetter ? value >= goal : value <= goal };
}

/** Issue 12's throughput goal: Dovetail's acked msg/s at least the faster peer's. */
function fasterPeerTarget(c: CaseResult, label: string): Target {
  let best: { value: number; peer: string } | null = null;
  for (const [system, r] of Object.entries(c.results)) {
    if (system.startsWith("dovetail") || !r.ok) continue;
    const v = r.median.ackedPerSec;
    if (v !== undefined && (!best || v > best.value)) best = { value: v, peer: system };
  }
  const ours = c.results.dovetail;
  const name = `dovetail acked msg/s ≥ the faster peer, ${label}`;
  if (!best || !ours)
    return {
      label: name,
      target: best?.value ?? 0,
      unit: "msg/s",
      higherIsBetter: true,
      value: null,
      met: null,
      note: best ? "dovetail not run" : "no peer ran",
    };
  const t = target(ours, "ackedPerSec", `${name} (${best.peer})`, best.value, "msg/s", true);
  return t;
}

/** `a`'s median `metric` ÷ `b`'s, against {@link GROUP_P50_MAX_RATIO}. */
function ratioTarget(c: CaseResult, a: string, b: string, metric: string, label: string): Target {
  const ra = c.results[a];
  const rb = c.results[b];
  const base = { label, target: GROUP_P50_MAX_RATIO, unit: "×", higherIsBetter: false };
  if (!ra?.ok || !rb?.ok)
    return { ...base, value: null, met: false, note: [ra, rb].flatMap((r) => r?.runs.find((x) => !x.ok)?.problems ?? [])[0] ?? "not run" };
  const va = ra.median[metric];
  const vb = rb.median[metric];
  if (va === undefined || vb === undefined || vb === 0) return { ...base, value: null, met: null };
  const value = va / vb;
  return { ...base, value, met: value <= GROUP_P50_MAX_RATIO, note: `${va.toFixed(2)} ms ÷ ${vb.toFixed(2)} ms` };
}

// ---------------------------------------------------------------------------------------------
// Processes

const WORKER = path.join(ROOT, "bench/worker.ts");
const READY_TIMEOUT_MS = 60_000;

interface Forked<D> {
  proc: ChildProcess;
  ready: Promise<void>;
  done: Promise<D>;
  send(m: { type: string }): void;
}

/** Fork bench/worker.ts with `config`; `onMessage` sees every message it sends. */
function forkWorker<D extends { error?: string }>(config: PublisherConfig | QueueWorkerConfig, onMessage: (m: { type: string }) => void = () => {}): Forked<D> {
  const proc = fork(WORKER, [], { execPath: process.execPath, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  const done = new Promise<D>((resolve, reject) => {
    proc.on("message", (m: { type: string }) => {
      onMessage(m);
      if (m.type === "ready") readyResolve();
      if (m.type === "done") {
        const d = m as unknown as D;
        if (d.error) readyReject(new Error(d.error));
        else readyResolve();
        resolve(d);
      }
    });
    proc.on("exit", (code, signal) => {
      const e = new Error(`${config.role} worker exited with ${code ?? signal} before reporting`);
      readyReject(e);
      reject(e);
    });
  });
  ready.catch(() => {});
  done.catch(() => {});
  proc.send(config);
  return {
    proc,
    ready,
    done,
    send: (m) => {
      if (proc.connected) proc.send(m);
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The publisher a work-queue client's messages come from (Dovetail's variants all publish raw frames). */
function publisherSystem(client: QueueClient): SystemName {
  return client.startsWith("dovetail") ? "dovetail" : (client as SystemName);
}

function publisherConfig(client: QueueClient, url: string, topic: string, count: number, batch: number, window: number): PublisherConfig {
  return { role: "pub", system: publisherSystem(client), url, publishers: [{ topic, pub: 0 }], warmup: 0, count, batch, window };
}

function publisherProblems(done: PublisherDone | undefined, count: number): string[] {
  if (!done) return ["the publisher did not report"];
  const problems: string[] = [];
  if (done.error) problems.push(`publisher: ${done.error}`);
  for (const p of done.pubs) {
    if (p.error) problems.push(`publisher: ${p.error}`);
    if (p.sent !== count) problems.push(`the publisher sent ${p.sent} of ${count}`);
  }
  return problems;
}

function queueWorkerConfig(
  client: QueueClient,
  ep: QueueEndpoint,
  cfg: WorkQueueConfig,
  workers: number,
  extra: Partial<QueueWorkerConfig>,
): QueueWorkerConfig {
  return {
    role: "queue",
    client,
    url: ep.url,
    topic: ep.topic,
    group: ep.group,
    ackWaitMs: ep.ackWaitMs,
    groupMaxAckPending: cfg.groupMaxAckPending,
    workers,
    prefetch: cfg.prefetch,
    mode: "ack",
    reportEach: false,
    ...extra,
  };
}

/** Count each sequence number's confirmed acks: every one of 0..count-1 exactly once. */
export function checkAcks(count: number, acked: number[][]): { distinct: number; duplicates: number; missing: number; unknown: number } {
  const seen = new Uint32Array(count);
  let duplicates = 0;
  let unknown = 0;
  for (const list of acked) {
    for (const seq of list) {
      if (!(seq >= 0 && seq < count)) unknown++;
      else if (seen[seq]!++ > 0) duplicates++;
    }
  }
  let distinct = 0;
  for (const n of seen) if (n > 0) distinct++;
  return { distinct, duplicates, missing: count - distinct, unknown };
}

// ---------------------------------------------------------------------------------------------
// 1. Acked throughput, one system, one run

export async function throughputRun(
  client: QueueClient,
  server: WorkQueuePeer,
  mode: "backlog" | "concurrent",
  count: number,
  cfg: WorkQueueConfig,
  tag: string,
): Promise<RunOutcome> {
  const url = server.url;
  const problems: string[] = [];
  const metrics: Metrics = {};
  const ep: QueueEndpoint = { url, topic: `bench.${tag}.wq`, group: "workers", ackWaitMs: cfg.throughputAckWaitMs };
  const procs: Forked<QueueWorkerDone>[] = [];
  let pub: Forked<PublisherDone> | null = null;
  try {
    await createQueue(client, ep, { groupMaxAckPending: cfg.groupMaxAckPending });
    const publish = () => {
      pub = forkWorker<PublisherDone>(publisherConfig(client, url, ep.topic, count, cfg.publishBatch, cfg.publishWindow));
      return pub;
    };
    if (mode === "backlog") {
      const p = publish();
      await withTimeout(p.ready, READY_TIMEOUT_MS, "connecting the publisher");
      p.send({ type: "go" });
      problems.push(...publisherProblems(await withTimeout(p.done, cfg.timeoutMs, "publishing the backlog"), count));
      if (problems.length) return { ok: false, problems, metrics };
    }
    // Workers, spread over the processes; progress tells when every message is acked.
    const acked: number[] = [];
    let allAcked!: () => void;
    const everyAck = new Promise<void>((r) => (allAcked = r));
    const perProc = Array.from({ length: cfg.procs }, (_, i) => Math.floor(cfg.workers / cfg.procs) + (i < cfg.workers % cfg.procs ? 1 : 0)).filter(
      (n) => n > 0,
    );
    let consuming = 0;
    let allConsuming!: () => void;
    const everyoneConsuming = new Promise<void>((r) => (allConsuming = r));
    for (const [i, n] of perProc.entries()) {
      acked[i] = 0;
      procs.push(
        forkWorker<QueueWorkerDone>(queueWorkerConfig(client, ep, cfg, n, {}), (m) => {
          if (m.type === "progress") {
            acked[i] = (m as unknown as { acked: number }).acked;
            if (acked.reduce((a, b) => a + b, 0) >= count) allAcked();
          }
          if (m.type === "consuming" && ++consuming === perProc.length) allConsuming();
        }),
      );
    }
    await withTimeout(Promise.all(procs.map((p) => p.ready)), READY_TIMEOUT_MS, "connecting the workers");
    const broken = new Promise<never>((_, reject) => {
      for (const p of procs) void p.done.then((d) => reject(new Error(d.error ? `a worker failed: ${d.error}` : "a worker ended early")), reject);
    });
    broken.catch(() => {});
    const cpuStart = server.cpuMs();
    for (const p of procs) p.send({ type: "go" });
    let cpuEnd: number | null = null;
    try {
      await withTimeout(Promise.race([everyoneConsuming, broken]), READY_TIMEOUT_MS, "joining the group");
      if (mode === "concurrent") {
        const p = publish();
        await withTimeout(Promise.race([p.ready, broken]), READY_TIMEOUT_MS, "connecting the publisher");
        p.send({ type: "go" });
      }
      await withTimeout(Promise.race([everyAck, broken]), cfg.timeoutMs, "acking every message");
      cpuEnd = server.cpuMs();
    } catch (e) {
      problems.push((e as Error).message);
    }
    for (const p of procs) p.send({ type: "stop" });
    const dones = await withTimeout(Promise.all(procs.map((p) => p.done)), 30_000, "collecting the workers' results").catch((e: Error) => {
      problems.push(e.message);
      return [] as QueueWorkerDone[];
    });
    if (pub) {
      const pd = await withTimeout((pub as Forked<PublisherDone>).done, 30_000, "the publisher finishing").catch(() => undefined);
      if (mode === "concurrent") {
        problems.push(...publisherProblems(pd, count));
        const p = pd?.pubs[0];
        if (p && BigInt(p.startNs) > 0n) metrics.publishMsgPerSec = count / (Number(BigInt(p.endNs) - BigInt(p.startNs)) / 1e9);
      }
    }
    for (const d of dones) if (d.error) problems.push(`worker: ${d.error}`);
    const check = checkAcks(
      count,
      dones.map((d) => d.acked),
    );
    if (check.missing || check.duplicates || check.unknown) {
      problems.push(
        `acked ${check.distinct} distinct of ${count}: ${check.missing} never acked, ${check.duplicates} acked twice, ${check.unknown} unknown ids`,
      );
    }
    const firsts = dones.map((d) => BigInt(d.firstNs)).filter((n) => n > 0n);
    const lasts = dones.map((d) => BigInt(d.lastAckNs)).filter((n) => n > 0n);
    if (firsts.length && lasts.length) {
      // biome-ignore lint/complexity/useMathMinMax: BigInt
      const t0 = firsts.reduce((a, b) => (a < b ? a : b));
      // biome-ignore lint/complexity/useMathMinMax: BigInt
      const t1 = lasts.reduce((a, b) => (a > b ? a : b));
      metrics.ackedPerSec = count / (Number(t1 - t0) / 1e9);
      metrics.usPerAck = 1e6 / metrics.ackedPerSec;
    }
    if (cpuEnd !== null) metrics.serverCpuUsPerAck = ((cpuEnd - cpuStart) * 1000) / count;
    if (dones.length === procs.length) metrics.workerCpuUsPerAck = dones.reduce((s, d) => s + d.cpuUs, 0) / count;
    metrics.deliveries = dones.reduce((s, d) => s + d.received, 0);
    metrics.redeliveries = Math.max(0, metrics.deliveries - count);
    // The server's view: nothing left pending, everything settled.
    const state = await queueState(client, ep).catch((e: Error) => {
      problems.push(`reading the queue's state: ${e.message}`);
      return null;
    });
    if (state) {
      if (state.pending !== 0 || state.settled !== count) problems.push(`server: ${state.detail} (expected ${count} settled, none pending)`);
    }
    // The machine is shared: the 1-minute load average at the end of the run, to read the figure by.
    metrics.load1 = os.loadavg()[0]!;
    return { ok: problems.length === 0, problems, metrics };
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    return { ok: false, problems, metrics };
  } finally {
    for (const p of [...procs, ...(pub ? [pub as Forked<PublisherDone>] : [])]) if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Redelivery after SIGKILL, one system, one run

export async function redeliveryRun(client: QueueClient, url: string, cfg: WorkQueueConfig, tag: string): Promise<RunOutcome> {
  const problems: string[] = [];
  const metrics: Metrics = {};
  const { jobs, ackWaitMs } = cfg.redelivery;
  const ep: QueueEndpoint = { url, topic: `bench.${tag}.wq-kill`, group: "workers", ackWaitMs };
  const forked: Forked<{ error?: string }>[] = [];
  try {
    await createQueue(client, ep, { groupMaxAckPending: cfg.groupMaxAckPending });
    const pub = forkWorker<PublisherDone>(publisherConfig(client, url, ep.topic, jobs, jobs, 1));
    forked.push(pub);
    await withTimeout(pub.ready, READY_TIMEOUT_MS, "connecting the publisher");
    pub.send({ type: "go" });
    problems.push(...publisherProblems(await withTimeout(pub.done, 30_000, "publishing"), jobs));
    if (problems.length) return { ok: false, problems, metrics };

    const held = new Map<number, bigint>();
    let allHeld!: () => void;
    const holding = new Promise<void>((r) => (allHeld = r));
    const holder = forkWorker<QueueWorkerDone>(queueWorkerConfig(client, ep, { ...cfg, prefetch: jobs }, 1, { mode: "hold", reportEach: true }), (m) => {
      if (m.type !== "job") return;
      const j = m as unknown as QueueJobReport;
      held.set(j.seq, BigInt(j.ns));
      if (held.size === jobs) allHeld();
    });
    const got = new Map<number, { ns: bigint; delivery: number }>();
    let gotAll!: () => void;
    const redelivered = new Promise<void>((r) => (gotAll = r));
    let survivorConsuming!: () => void;
    const consuming = new Promise<void>((r) => (survivorConsuming = r));
    let survivorAcks = 0;
    let survivorAcked!: () => void;
    const allSurvivorAcks = new Promise<void>((r) => (survivorAcked = r));
    const survivor = forkWorker<QueueWorkerDone>(queueWorkerConfig(client, ep, { ...cfg, prefetch: jobs }, 1, { reportEach: true }), (m) => {
      if (m.type === "consuming") survivorConsuming();
      if (m.type === "progress" && (survivorAcks = (m as unknown as { acked: number }).acked) >= jobs) survivorAcked();
      if (m.type !== "job") return;
      const j = m as unknown as QueueJobReport;
      if (!got.has(j.seq)) got.set(j.seq, { ns: BigInt(j.ns), delivery: j.delivery });
      if (got.size >= jobs && [...held.keys()].every((s) => got.has(s))) gotAll();
    });
    forked.push(holder, survivor);
    await withTimeout(Promise.all([holder.ready, survivor.ready]), READY_TIMEOUT_MS, "connecting the workers");
    holder.send({ type: "go" });
    await withTimeout(holding, 30_000, `the first worker taking ${jobs} jobs`);
    survivor.send({ type: "go" });
    await withTimeout(consuming, 30_000, "the second worker joining");
    if (got.size > 0) problems.push(`the second worker got ${got.size} jobs while the first still held them`);
    const killNs = process.hrtime.bigint();
    holder.proc.kill("SIGKILL");
    try {
      await withTimeout(redelivered, ackWaitMs * 3 + 10_000, `redelivery of the ${jobs} held jobs`);
      await withTimeout(allSurvivorAcks, 30_000, "the second worker acking them");
    } catch (e) {
      problems.push(`${(e as Error).message}: the second worker has ${got.size} of ${jobs}, acked ${survivorAcks}`);
    }
    survivor.send({ type: "stop" });
    const done = await withTimeout(survivor.done, 30_000, "the second worker reporting").catch((e: Error) => {
      problems.push(e.message);
      return null;
    });
    if (done?.error) problems.push(`second worker: ${done.error}`);
    if (done) {
      const check = checkAcks(jobs, [done.acked]);
      if (check.missing || check.duplicates || check.unknown)
        problems.push(`second worker acked ${check.distinct} distinct of ${jobs} (${check.duplicates} twice)`);
    }
    const times = [...held.keys()].map((s) => got.get(s)?.ns).filter((n): n is bigint => n !== undefined);
    if (times.length === jobs) {
      // biome-ignore lint/complexity/useMathMinMax: BigInt
      metrics.redeliveryMs = Number(times.reduce((a, b) => (a > b ? a : b)) - killNs) / 1e6;
      // biome-ignore lint/complexity/useMathMinMax: BigInt
      metrics.firstRedeliveryMs = Number(times.reduce((a, b) => (a < b ? a : b)) - killNs) / 1e6;
    }
    // biome-ignore lint/complexity/useMathMinMax: BigInt
    const firstHeld = [...held.values()].reduce((a, b) => (a < b ? a : b));
    metrics.heldBeforeKillMs = Number(killNs - firstHeld) / 1e6;
    metrics.ackWaitMs = ackWaitMs;
    const state = await queueState(client, ep).catch((e: Error) => {
      problems.push(`reading the queue's state: ${e.message}`);
      return null;
    });
    if (state && (state.pending !== 0 || state.settled !== jobs)) problems.push(`server: ${state.detail} (expected ${jobs} settled, none pending)`);
    return { ok: problems.length === 0, problems, metrics };
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    return { ok: false, problems, metrics };
  } finally {
    for (const p of forked) if (p.proc.exitCode === null) p.proc.kill("SIGKILL");
  }
}
