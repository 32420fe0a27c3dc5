/**
 * Runs one case of a workload against one system once: prepares the topics on the server
 * (topic-setup.ts: JetStream streams, Dovetail durability levels), forks the subscriber processes, waits
 * until they are subscribed, forks the publisher processes, lets them go, collects what each
 * process reports and turns it into figures, after checking counts and order. A run that lost,
 * duplicated or reordered a message, or did not finish in time, comes back `ok: false` with the
 * reasons, and its figures are never used.
 *
 * @example
 * const run = await runCase("redis-pubsub", "redis://127.0.0.1:6390", spec, { tag: "w1" });
 * if (run.ok) console.log(run.metrics.deliveriesPerSec);
 */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import * as hdr from "hdr-histogram-js";
import { ROOT } from "./peers.ts";
import type { ClientName } from "./systems.ts";
import { prepareTopics, type Cleanup } from "./topic-setup.ts";
import type { SystemResult } from "./report.ts";
import type { PublisherConfig, PublisherDone, SubscriberConfig, SubscriberDone } from "../worker.ts";

export interface CaseSpec {
  id: string;
  label: string;
  topics: number;
  pubsPerTopic: number;
  /** Fast (checked, measured) subscribers per topic. */
  subsPerTopic: number;
  /** Processes the publishers / subscribers are spread over. */
  pubProcs: number;
  subProcs: number;
  /** Per publisher: messages excluded from the figures, then measured messages. */
  warmup: number;
  count: number;
  /** Messages per API call (1 = unbatched) and API calls in flight per publisher. */
  batch: number;
  window: number;
  /** Fixed rate per publisher (latency workloads); absent = as fast as the system takes them. */
  ratePerSec?: number;
  /** Slow consumers per topic, in their own process, reading `ratePerSec` messages a second. */
  slow?: { perTopic: number; ratePerSec: number };
  timeoutMs: number;
}

export type Metrics = Record<string, number>;

export interface RunOutcome {
  ok: boolean;
  problems: string[];
  metrics: Metrics;
  /** Merged latency histogram of the fast subscribers (compressed HDR, microseconds). */
  histogram?: string;
}

export interface RunContext {
  /** Unique per run, part of every topic name. */
  tag: string;
  /** Resident memory of the system's server process(es), sampled during the run. */
  serverRss?: () => number;
  /** CPU time of the system's server process(es) so far, ms: gives `serverCpuUsPerMsg`. */
  serverCpu?: () => number;
}

const WORKER = path.join(ROOT, "bench/worker.ts");
const READY_TIMEOUT_MS = 60_000;
const MEMORY_SAMPLE_MS = 250;

interface Worker {
  proc: ChildProcess;
  ready: Promise<void>;
  done: Promise<PublisherDone | SubscriberDone>;
}

function startWorker(config: PublisherConfig | SubscriberConfig): Worker {
  const proc = fork(WORKER, [], { execPath: process.execPath, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  const done = new Promise<PublisherDone | SubscriberDone>((resolve, reject) => {
    proc.on("message", (m: { type: string }) => {
      if (m.type === "ready") readyResolve();
      if (m.type === "done") {
        const d = m as PublisherDone | SubscriberDone;
        if (d.error) readyReject(new Error(d.error));
        else readyResolve();
        resolve(d);
      }
    });
    proc.on("exit", (code) => {
      const e = new Error(`${config.role} worker exited with ${code} before reporting`);
      readyReject(e);
      reject(e);
    });
  });
  ready.catch(() => {});
  done.catch(() => {});
  proc.send(config);
  return { proc, ready, done };
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

/** Split `items` round-robin over `n` groups (no empty group). */
function spread<T>(items: T[], n: number): T[][] {
  const groups: T[][] = Array.from({ length: Math.max(1, Math.min(n, items.length)) }, () => []);
  for (const [i, item] of items.entries()) groups[i % groups.length]!.push(item);
  return groups;
}

export async function runCase(system: ClientName, url: string, spec: CaseSpec, ctx: RunContext): Promise<RunOutcome> {
  const problems: string[] = [];
  // NATS subjects and Redis keys take dots; Dovetail topic names take dots and dashes.
  const topics = Array.from({ length: spec.topics }, (_, i) => `bench.${ctx.tag}.${spec.id}.${i}`);
  const fastSubs = topics.flatMap((t) => Array.from({ length: spec.subsPerTopic }, () => t));
  // Streams (JetStream) and durability levels (Dovetail) before anyone subscribes; a refusal
  // fails the run, it never falls back to the system's defaults.
  let cleanup: Cleanup;
  try {
    cleanup = await prepareTopics(system, url, topics);
  } catch (e) {
    return { ok: false, problems: [`preparing the topics: ${e instanceof Error ? e.message : String(e)}`], metrics: {} };
  }
  const subWorkers = spread(fastSubs, spec.subProcs).map((group) =>
    startWorker({ role: "sub", system, url, topics: group, publishersPerTopic: spec.pubsPerTopic, warmup: spec.warmup, count: spec.count }),
  );
  const slowWorkers = spec.slow
    ? [
        startWorker({
          role: "sub",
          system,
          url,
          topics: topics.flatMap((t) => Array.from({ length: spec.slow!.perTopic }, () => t)),
          publishersPerTopic: spec.pubsPerTopic,
          warmup: spec.warmup,
          count: spec.count,
          slowRatePerSec: spec.slow.ratePerSec,
        }),
      ]
    : [];
  const all: Worker[] = [...subWorkers, ...slowWorkers];
  const killAll = () => {
    for (const w of all) if (w.proc.exitCode === null) w.proc.kill("SIGKILL");
  };
  try {
    await withTimeout(Promise.all([...subWorkers, ...slowWorkers].map((w) => w.ready)), READY_TIMEOUT_MS, "subscribing");
    const publishers = topics.flatMap((topic) => Array.from({ length: spec.pubsPerTopic }, (_, pub) => ({ topic, pub })));
    const pubWorkers = spread(publishers, spec.pubProcs).map((group) =>
      startWorker({
        role: "pub",
        system,
        url,
        publishers: group,
        warmup: spec.warmup,
        count: spec.count,
        batch: spec.batch,
        window: spec.window,
        ...(spec.ratePerSec ? { ratePerSec: spec.ratePerSec } : {}),
      }),
    );
    all.push(...pubWorkers);
    await withTimeout(Promise.all(pubWorkers.map((w) => w.ready)), READY_TIMEOUT_MS, "connecting publishers");

    const rssStart = ctx.serverRss?.() ?? 0;
    const cpuStart = ctx.serverCpu?.() ?? 0;
    let rssPeak = rssStart;
    const sampler = ctx.serverRss
      ? setInterval(() => {
          rssPeak = Math.max(rssPeak, ctx.serverRss!());
        }, MEMORY_SAMPLE_MS)
      : null;
    for (const w of pubWorkers) w.proc.send({ type: "go" });

    const subDone = Promise.all(subWorkers.map((w) => w.done as Promise<SubscriberDone>));
    // A broken subscriber or publisher means the run cannot complete: stop at once rather than
    // wait for the timeout.
    const broken = new Promise<never>((_, reject) => {
      for (const w of subWorkers) void w.done.then((d) => d.error && reject(new Error(`a subscriber failed: ${d.error}`)), reject);
      for (const w of pubWorkers) {
        void w.done.then((d) => {
          const e = d.error ?? ("pubs" in d ? d.pubs.find((p) => p.error)?.error : undefined);
          if (e) reject(new Error(`a publisher failed: ${e}`));
        }, reject);
      }
    });
    broken.catch(() => {});
    let subResults: SubscriberDone[];
    try {
      subResults = await withTimeout(Promise.race([subDone, broken]), spec.timeoutMs, "delivery");
    } catch (e) {
      const message = (e as Error).message;
      problems.push(
        spec.ratePerSec && message.includes("timed out") ? `${message}: the system did not keep up with the offered ${spec.ratePerSec} msg/s` : message,
      );
      for (const w of subWorkers) if (w.proc.connected) w.proc.send({ type: "stop" });
      subResults = await withTimeout(subDone, 10_000, "collecting partial results").catch(() => []);
    }
    const pubResults = await withTimeout(Promise.all(pubWorkers.map((w) => w.done as Promise<PublisherDone>)), 30_000, "publishers finishing").catch(
      (e: Error) => {
        problems.push(e.message);
        return [] as PublisherDone[];
      },
    );
    for (const w of slowWorkers) if (w.proc.connected) w.proc.send({ type: "stop" });
    const slowResults = await withTimeout(Promise.all(slowWorkers.map((w) => w.done as Promise<SubscriberDone>)), 10_000, "slow consumers").catch(
      () => [] as SubscriberDone[],
    );
    if (sampler) clearInterval(sampler);
    rssPeak = Math.max(rssPeak, ctx.serverRss?.() ?? 0);

    const run = summarize(spec, pubResults, subResults, slowResults, problems, ctx.serverRss ? { rssStart, rssPeak } : null);
    // Server CPU per message published (warm-up included: the CPU clock cannot leave it out).
    if (ctx.serverCpu) run.metrics.serverCpuUsPerMsg = ((ctx.serverCpu() - cpuStart) * 1000) / (spec.topics * spec.pubsPerTopic * (spec.warmup + spec.count));
    return run;
  } catch (e) {
    problems.push(e instanceof Error ? e.message : String(e));
    return { ok: false, problems, metrics: {} };
  } finally {
    killAll();
    await cleanup();
  }
}

/** Turn what the worker processes reported into figures, after checking counts and order. */
export function summarize(
  spec: CaseSpec,
  pubs: PublisherDone[],
  subs: SubscriberDone[],
  slow: SubscriberDone[],
  problems: string[],
  memory: { rssStart: number; rssPeak: number } | null,
): RunOutcome {
  const metrics: Metrics = {};
  const expectedPubs = spec.topics * spec.pubsPerTopic;
  const expectedSubs = spec.topics * spec.subsPerTopic;
  const pubList = pubs.flatMap((p) => p.pubs);
  for (const p of pubs) if (p.error) problems.push(`publisher process: ${p.error}`);
  for (const p of pubList) if (p.error) problems.push(`publisher on ${p.topic}: ${p.error}`);
  if (pubList.length !== expectedPubs) problems.push(`${pubList.length} of ${expectedPubs} publishers reported`);
  for (const p of pubList) if (p.sent !== spec.warmup + spec.count) problems.push(`a publisher sent ${p.sent} of ${spec.warmup + spec.count}`);

  const subList = subs.flatMap((s) => s.subs);
  for (const s of subs) if (s.error) problems.push(`subscriber process: ${s.error}`);
  if (subList.length !== expectedSubs) problems.push(`${subList.length} of ${expectedSubs} subscribers reported`);
  let badChecks = 0;
  for (const s of subList) {
    if (!s.check.ok || !s.complete) {
      if (badChecks++ < 3) {
        const c = s.check;
        problems.push(
          `subscriber on ${s.topic}: received ${c.received}, missing ${c.missing}, out of order ${c.outOfOrder}, duplicates ${c.duplicates}, malformed ${c.malformed}`,
        );
      }
    }
  }
  if (badChecks > 3) problems.push(`… and ${badChecks - 3} more subscribers with bad counts`);

  const starts = pubList.map((p) => BigInt(p.startNs)).filter((n) => n > 0n);
  const ends = pubList.map((p) => BigInt(p.endNs));
  const lasts = subList.map((s) => BigInt(s.lastNs)).filter((n) => n > 0n);
  if (starts.length && ends.length && lasts.length) {
    // BigInt nanoseconds: Math.min/max do not take BigInt, so these reduce by hand.
    // biome-ignore lint/complexity/useMathMinMax: BigInt
    const t0 = starts.reduce((a, b) => (a < b ? a : b));
    // biome-ignore lint/complexity/useMathMinMax: BigInt
    const pubEnd = ends.reduce((a, b) => (a > b ? a : b));
    // biome-ignore lint/complexity/useMathMinMax: BigInt
    const subEnd = lasts.reduce((a, b) => (a > b ? a : b));
    const measured = expectedPubs * spec.count;
    const deliveries = subList.reduce(
      (sum, s) => sum + Math.max(0, Math.min(s.check.received, spec.pubsPerTopic * (spec.warmup + spec.count)) - spec.pubsPerTopic * spec.warmup),
      0,
    );
    metrics.publishMsgPerSec = measured / (Number(pubEnd - t0) / 1e9);
    metrics.deliveriesPerSec = deliveries / (Number(subEnd - t0) / 1e9);
    metrics.msgPerSec = metrics.deliveriesPerSec / Math.max(1, expectedSubs / spec.topics);
    if (expectedSubs > 0) metrics.usPerDelivery = 1e6 / metrics.deliveriesPerSec;
  }

  let histogram: string | undefined;
  const hists = subs.map((s) => s.histogram).filter(Boolean);
  if (hists.length) {
    const merged = hdr.decodeFromCompressedBase64(hists[0]!);
    for (const h of hists.slice(1)) merged.add(hdr.decodeFromCompressedBase64(h));
    if (merged.totalCount > 0) {
      metrics.p50Ms = merged.getValueAtPercentile(50) / 1000;
      metrics.p90Ms = merged.getValueAtPercentile(90) / 1000;
      metrics.p99Ms = merged.getValueAtPercentile(99) / 1000;
      metrics.p999Ms = merged.getValueAtPercentile(99.9) / 1000;
      metrics.maxMs = merged.maxValue / 1000;
      histogram = hdr.encodeIntoCompressedBase64(merged);
    }
  }

  if (spec.slow) {
    const slowSubs = slow.flatMap((s) => s.subs);
    metrics.slowReceived = slowSubs.reduce((sum, s) => sum + s.check.received, 0);
    for (const s of slowSubs)
      if (s.check.outOfOrder || s.check.duplicates)
        problems.push(`slow subscriber on ${s.topic}: out of order ${s.check.outOfOrder}, duplicates ${s.check.duplicates}`);
    const slowErr = slow.find((s) => s.error)?.error;
    if (slowErr) metrics.slowDisconnected = 1;
  }
  if (memory) {
    metrics.serverRssStartMB = memory.rssStart / 2 ** 20;
    metrics.serverRssGrowthMB = (memory.rssPeak - memory.rssStart) / 2 ** 20;
  }
  return { ok: problems.length === 0, problems, metrics, ...(histogram ? { histogram } : {}) };
}

const PERCENTILES = [0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1];

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The runs of one case on one system: medians, min and max of the valid runs, the merged latency curve. */
export function aggregate(runs: RunOutcome[]): SystemResult {
  const valid = runs.filter((r) => r.ok);
  const keys = new Set(valid.flatMap((r) => Object.keys(r.metrics)));
  const med: Metrics = {};
  const min: Metrics = {};
  const max: Metrics = {};
  for (const k of keys) {
    const xs = valid.map((r) => r.metrics[k]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (!xs.length) continue;
    med[k] = median(xs);
    min[k] = Math.min(...xs);
    max[k] = Math.max(...xs);
  }
  const result: SystemResult = {
    ok: valid.length > 0 && valid.length === runs.length,
    validRuns: valid.length,
    runs: runs.map((r) => ({ ok: r.ok, problems: r.problems, metrics: r.metrics })),
    median: med,
    min,
    max,
  };
  const hists = valid.map((r) => r.histogram).filter((h): h is string => !!h);
  if (hists.length) {
    const merged = hdr.decodeFromCompressedBase64(hists[0]!);
    for (const h of hists.slice(1)) merged.add(hdr.decodeFromCompressedBase64(h));
    result.curve = PERCENTILES.map((p) => [p, (p === 1 ? merged.maxValue : merged.getValueAtPercentile(p * 100)) / 1000]);
  }
  return result;
}
