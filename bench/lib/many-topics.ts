/**
 * Many topics on one local bus (issue 18, item 7): creates `topics` topics in `waves` waves, one
 * HTTP publish each (`concurrency` at a time, as fast as the bus takes them), with an idle gap
 * after each wave, on a bus of its own (`scripts/dev.mjs`, workerd, a temp state folder). It
 * samples workerd's resident memory and open file descriptors (which of them are topic SQLite
 * files, which are sockets) every second while a wave runs, right after it and once the gap is
 * over, and times `/healthz` (every `healthEveryMs` while a wave runs, then once after it and once
 * after the gap), a publish to a topic never used before and a publish to an old topic (one whose
 * object has left memory, so the publish wakes it).
 *
 * What it shows (docs/local-limits.md): workerd removes a Durable Object from memory 10 s after
 * its last request ends and closes its SQLite files (database, WAL, shared-memory index) then;
 * the memory it used is kept by the process and reused by the next objects, not returned. The
 * gap after each wave waits until the wave's topic files are closed and records how long that
 * took (the eviction delay as seen from outside).
 *
 * The run is healthy when every request succeeded, `/healthz` stayed under `healthBoundMs` (its
 * 90th percentile while a wave runs, and each probe after a wave and after its gap) and no single
 * `/healthz` took over `stallBoundMs`, the topic files were closed within `releaseTimeoutMs`
 * after every wave, and memory was reused: what the process grew by after wave 1, per topic
 * created since, is under `residualBound` × what one open topic costs (wave 1's figure). Keeping
 * every topic would make that ratio about 1; measured, it is about 0.05 (docs/local-limits.md).
 * Otherwise `ok` is false and `problems` says why.
 *
 * Linux only (reads /proc; run.ts skips it elsewhere); the bus runs with auth off like every bench case (with the dev token,
 * the JWT rate limit of 1,000 requests per 10 s per credential would pace the creation instead).
 *
 * @example
 * const result = await runManyTopics(manyTopicsConfig(true), console.log);
 * if (!result.ok) console.log(result.problems);
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import path from "node:path";
import { startBus, type BusProcess } from "../../test/support/bus-process.ts";
import { BENCH_BUS_VARS, workerdPids } from "./peers.ts";

export interface ManyTopicsConfig {
  topics: number;
  waves: number;
  /** HTTP publishes in flight while a wave creates its topics. */
  concurrency: number;
  /** Idle time after each wave, at least (longer while the wave's topic files are still open). */
  idleMs: number;
  /** A wave whose topic files are still open this long after its last request is a problem. */
  releaseTimeoutMs: number;
  /** `/healthz` is timed this often while a wave runs. */
  healthEveryMs: number;
  /** Publishes timed per sample, to fresh topics and to old ones. */
  probes: number;
  /**
   * Bound on `/healthz`: its p90 while a wave runs, and each probe after a wave and after its gap.
   * Not lower: topics are created on workerd's one thread with synchronous file I/O (about 6 opens
   * and 9 fsyncs per topic, strace), so a busy disk delays every request for a while.
   */
  healthBoundMs: number;
  /** Bound on any single `/healthz` while a wave runs. */
  stallBoundMs: number;
  /** Bound on memory kept per topic created after wave 1, as a fraction of the memory of one open topic. */
  residualBound: number;
}

/** CI (`--quick`): 500 topics in 2 waves, about 40 s. Full: 20,000 topics in 8 waves. */
export function manyTopicsConfig(quick: boolean): ManyTopicsConfig {
  const common = { releaseTimeoutMs: 30_000, healthEveryMs: 200, healthBoundMs: 2_000, stallBoundMs: 10_000, residualBound: 0.5 };
  return quick
    ? { ...common, topics: 500, waves: 2, concurrency: 8, idleMs: 12_000, probes: 3 }
    : { ...common, topics: 20_000, waves: 8, concurrency: 16, idleMs: 15_000, probes: 5 };
}

/** What /proc says about workerd at one moment. */
export interface ProcessSample {
  rssMB: number;
  /** Anonymous resident memory (heaps): what stays after objects leave. */
  anonMB: number;
  fds: number;
  /** Descriptors on topic SQLite files (`*.sqlite`, `-wal`, `-shm` in the Topic namespace folder). */
  topicFileFds: number;
  /** Topics with files open: distinct topic databases among those descriptors. */
  openTopics: number;
  socketFds: number;
}

export interface Latencies {
  n: number;
  failed: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface Probe extends ProcessSample {
  /** null: the request failed. */
  healthMs: number | null;
  /** Publish to a topic never used before (creates its object and database). */
  freshPublishMs: Latencies;
  /** Publish to a topic of an earlier wave (wakes its object, reopens its database); none right after wave 1. */
  oldPublishMs: Latencies;
}

export interface WaveResult {
  wave: number;
  /** Topics created so far, this wave included. */
  topicsSoFar: number;
  created: number;
  failed: number;
  createMs: number;
  topicsPerSec: number;
  /** `/healthz` every `healthEveryMs` while the wave ran. */
  healthDuringWave: Latencies;
  /** Highest figures of the samples taken every second while the wave ran (and right after it). */
  peakDuringWave: { rssMB: number; fds: number; openTopics: number };
  /** Right after the wave. */
  afterWave: Probe;
  /** ms from the last request of the wave (probes included) until its topic files were closed; null if they never were. */
  releasedAfterMs: number | null;
  /** After the idle gap. */
  afterIdle: Probe;
}

export interface ManyTopicsResult {
  ok: boolean;
  problems: string[];
  config: ManyTopicsConfig;
  /** workerd's open-file limit (soft), from /proc/PID/limits. */
  fdLimit: number | null;
  baseline: ProcessSample;
  waves: WaveResult[];
  summary: Record<string, number | null>;
  durationMs: number;
}

const PROBE_TIMEOUT_MS = 30_000;
/** How often the files are checked while waiting for a wave's topics to close. */
const SAMPLE_EVERY_MS = 250;
/** How often /proc is read while a wave runs (reading thousands of fd links costs the bench CPU). */
const SAMPLE_DURING_WAVE_MS = 1_000;
/**
 * A topic database is `<id>.sqlite` (+ `-wal`, `-shm`) in the Topic class's namespace folder.
 * `metadata.sqlite` there is the namespace's alarm index, open for as long as workerd runs.
 */
const TOPIC_FILE = /-Topic\/(?!metadata\.)([^/]+)\.sqlite(?:-wal|-shm)?$/;

export function sampleProcess(pids: number[]): ProcessSample {
  const out: ProcessSample = { rssMB: 0, anonMB: 0, fds: 0, topicFileFds: 0, openTopics: 0, socketFds: 0 };
  const topics = new Set<string>();
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
      out.rssMB += kb("VmRSS") / 1024;
      out.anonMB += kb("RssAnon") / 1024;
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        out.fds++;
        let target: string;
        try {
          target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          continue; // closed meanwhile
        }
        if (target.startsWith("socket:")) out.socketFds++;
        const m = TOPIC_FILE.exec(target);
        if (m) {
          out.topicFileFds++;
          topics.add(`${pid}:${m[1]}`);
        }
      }
    } catch {
      // gone
    }
  }
  out.openTopics = topics.size;
  out.rssMB = Math.round(out.rssMB * 10) / 10;
  out.anonMB = Math.round(out.anonMB * 10) / 10;
  return out;
}

function fdLimitOf(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    return soft && /^\d+$/.test(soft) ? Number(soft) : null;
  } catch {
    return null;
  }
}

export function latencies(samples: number[], failed: number): Latencies {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : 0);
  const r = (x: number) => Math.round(x * 100) / 100;
  return { n: samples.length + failed, failed, p50Ms: r(at(0.5)), p90Ms: r(at(0.9)), p99Ms: r(at(0.99)), maxMs: r(s.at(-1) ?? 0) };
}

/** One timed request; `null` when it failed (status, network error or timeout). */
async function timed(url: string, init?: RequestInit): Promise<number | null> {
  const t0 = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.arrayBuffer();
    return res.ok ? performance.now() - t0 : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sizes of the Topic namespace's files in the state folder, and how many topic databases there are. */
function topicDisk(state: string): { topics: number; bytes: number } {
  const root = path.join(state, "v3", "do");
  let topics = 0;
  let bytes = 0;
  try {
    for (const ns of readdirSync(root)) {
      if (!ns.endsWith("-Topic")) continue;
      for (const f of readdirSync(path.join(root, ns))) {
        bytes += statSync(path.join(root, ns, f)).size;
        if (f.endsWith(".sqlite") && f !== "metadata.sqlite") topics++;
      }
    }
  } catch {
    // no state yet
  }
  return { topics, bytes };
}

function failedRequests(w: WaveResult): number {
  return (
    w.failed +
    w.healthDuringWave.failed +
    [w.afterWave, w.afterIdle].reduce((n, p) => n + p.freshPublishMs.failed + p.oldPublishMs.failed + (p.healthMs === null ? 1 : 0), 0)
  );
}

/**
 * The checks, apart from the run: every request succeeded, health stayed bounded, every wave's
 * topic files were closed in time, memory was reused.
 */
export function checkManyTopics(config: ManyTopicsConfig, baseline: ProcessSample, waves: WaveResult[]): string[] {
  const problems: string[] = [];
  for (const w of waves) {
    const failed = failedRequests(w);
    if (failed > 0) problems.push(`wave ${w.wave}: ${failed} request(s) failed (${w.failed} of ${w.created} topic creations)`);
    if (w.healthDuringWave.p90Ms > config.healthBoundMs)
      problems.push(`wave ${w.wave}: /healthz p90 ${w.healthDuringWave.p90Ms.toFixed(0)} ms while it ran (bound ${config.healthBoundMs} ms)`);
    if (w.healthDuringWave.maxMs > config.stallBoundMs)
      problems.push(`wave ${w.wave}: a /healthz took ${w.healthDuringWave.maxMs.toFixed(0)} ms while it ran (bound ${config.stallBoundMs} ms)`);
    const probe = Math.max(w.afterWave.healthMs ?? 0, w.afterIdle.healthMs ?? 0);
    if (probe > config.healthBoundMs) problems.push(`wave ${w.wave}: /healthz took ${probe.toFixed(0)} ms after it (bound ${config.healthBoundMs} ms)`);
    if (w.releasedAfterMs === null)
      problems.push(`wave ${w.wave}: topic files still open ${config.releaseTimeoutMs / 1000} s after its last request (idle objects were not evicted)`);
  }
  const kept = residual(baseline, waves);
  if (kept && kept.fraction > config.residualBound) {
    problems.push(
      `memory not reused: ${kept.kbPerTopic.toFixed(0)} KB kept per topic created after wave 1, ${kept.fraction.toFixed(2)} of an open topic's ${(kept.openTopicMB * 1024).toFixed(0)} KB (bound ${config.residualBound})`,
    );
  }
  return problems;
}

/** Memory per open topic from one wave's peaks, or null if no topic was seen open. */
export function mbPerOpenTopic(baseline: ProcessSample, wave: WaveResult): number | null {
  const peak = wave.peakDuringWave;
  return peak.openTopics > 0 ? (peak.rssMB - baseline.rssMB) / peak.openTopics : null;
}

/**
 * Memory one open topic costs (wave 1's peaks: RSS over baseline ÷ topics open; RSS stays at its
 * high-water mark, so the peak of open topics is what it reflects), and what the process grew by
 * from right after wave 1 to after the last gap, per topic created in between.
 */
export function residual(baseline: ProcessSample, waves: WaveResult[]): { openTopicMB: number; kbPerTopic: number; fraction: number } | null {
  const first = waves[0];
  const last = waves.at(-1);
  if (!first || !last || waves.length < 2) return null;
  const openTopicMB = mbPerOpenTopic(baseline, first);
  if (openTopicMB === null) return null;
  const perTopicMB = Math.max(0, last.afterIdle.rssMB - first.afterWave.rssMB) / (last.topicsSoFar - first.topicsSoFar);
  return { openTopicMB, kbPerTopic: perTopicMB * 1024, fraction: openTopicMB > 0 ? perTopicMB / openTopicMB : 0 };
}

export async function runManyTopics(config: ManyTopicsConfig, log: (text: string) => void, options: { verbose?: boolean } = {}): Promise<ManyTopicsResult> {
  const started = Date.now();
  const bus: BusProcess = await startBus({ vars: BENCH_BUS_VARS, verbose: options.verbose ?? false });
  const tag = started.toString(36);
  const topicName = (i: number) => `bench.many.${tag}.${i}`;
  let freshCounter = 0;
  try {
    const pids = workerdPids(bus.port);
    if (!pids.length) throw new Error(`no workerd process found for port ${bus.port}`);
    const sample = () => sampleProcess(pids);
    const publishUrl = (topic: string) => `${bus.url}/v1/topics/${topic}/messages`;
    const publish = (topic: string, i: number) =>
      timed(publishUrl(topic), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ data: { i } }) });

    // Settle: the bus's own objects (and the first health checks') are idle before the baseline.
    await timed(`${bus.url}/healthz`);
    await sleep(1_000);
    const baseline = sample();
    const fdLimit = fdLimitOf(pids[0]!);
    log(`many-topics: baseline ${baseline.rssMB} MB, ${baseline.fds} fds (limit ${fdLimit ?? "unknown"}); ${config.topics} topics in ${config.waves} waves`);

    let created = 0;
    const waves: WaveResult[] = [];
    const probe = async (oldest: number): Promise<Probe> => {
      const proc = sample(); // before the probes open anything
      const healthMs = await timed(`${bus.url}/healthz`);
      const fresh: number[] = [];
      const old: number[] = [];
      let freshFailed = 0;
      let oldFailed = 0;
      for (let i = 0; i < config.probes; i++) {
        const f = await publish(`bench.many.${tag}.fresh.${freshCounter++}`, i);
        if (f === null) freshFailed++;
        else fresh.push(f);
        // Old topics spread over the ones created before `oldest`, which are evicted by then.
        if (oldest > 0) {
          const o = await publish(topicName(Math.floor(((i + 0.5) / config.probes) * oldest)), i);
          if (o === null) oldFailed++;
          else old.push(o);
        }
      }
      return {
        ...proc,
        healthMs: healthMs === null ? null : Math.round(healthMs * 100) / 100,
        freshPublishMs: latencies(fresh, freshFailed),
        oldPublishMs: latencies(old, oldFailed),
      };
    };

    for (let w = 1; w <= config.waves; w++) {
      const first = created;
      const count = Math.floor(config.topics / config.waves) + (w <= config.topics % config.waves ? 1 : 0);
      let next = 0;
      let failed = 0;
      const t0 = performance.now();
      let creating = true;
      const healthSamples: number[] = [];
      let healthFailed = 0;
      const healthLoop = (async () => {
        while (creating) {
          const ms = await timed(`${bus.url}/healthz`);
          if (ms === null) healthFailed++;
          else healthSamples.push(ms);
          await sleep(config.healthEveryMs);
        }
      })();
      const peakDuringWave = { rssMB: 0, fds: 0, openTopics: 0 };
      const notePeak = (p: ProcessSample) => {
        peakDuringWave.rssMB = Math.max(peakDuringWave.rssMB, p.rssMB);
        peakDuringWave.fds = Math.max(peakDuringWave.fds, p.fds);
        peakDuringWave.openTopics = Math.max(peakDuringWave.openTopics, p.openTopics);
      };
      const sampleLoop = (async () => {
        while (creating) {
          notePeak(sample());
          await sleep(SAMPLE_DURING_WAVE_MS);
        }
      })();
      await Promise.all(
        Array.from({ length: config.concurrency }, async () => {
          while (next < count) {
            const i = first + next++;
            if ((await publish(topicName(i), i)) === null) failed++;
          }
        }),
      );
      const createMs = performance.now() - t0;
      creating = false;
      await Promise.all([healthLoop, sampleLoop]);
      created += count;
      // Old topics: those of earlier waves, evicted by now (none after wave 1).
      const afterWave = await probe(first);
      notePeak(afterWave);
      const quietSince = performance.now();
      let releasedAfterMs: number | null = null;
      while (performance.now() - quietSince < config.releaseTimeoutMs) {
        if (sample().openTopics === 0) {
          releasedAfterMs = Math.round(performance.now() - quietSince);
          break;
        }
        await sleep(SAMPLE_EVERY_MS);
      }
      const rest = config.idleMs - (performance.now() - quietSince);
      if (rest > 0) await sleep(rest);
      const afterIdle = await probe(created);
      const wave: WaveResult = {
        wave: w,
        topicsSoFar: created,
        created: count,
        failed,
        createMs: Math.round(createMs),
        topicsPerSec: Math.round((count / createMs) * 1000),
        healthDuringWave: latencies(healthSamples, healthFailed),
        peakDuringWave,
        afterWave,
        releasedAfterMs,
        afterIdle,
      };
      waves.push(wave);
      log(
        `many-topics wave ${w}/${config.waves}: ${created} topics (${wave.topicsPerSec}/s, ${failed} failed); after wave ${afterWave.rssMB} MB, ${afterWave.fds} fds, ${afterWave.openTopics} topics open, ` +
          `health max ${wave.healthDuringWave.maxMs} ms; files closed after ${releasedAfterMs === null ? "—" : `${(releasedAfterMs / 1000).toFixed(1)} s`}; idle ${afterIdle.rssMB} MB, ${afterIdle.fds} fds`,
      );
    }

    const disk = topicDisk(bus.state);
    const problems = checkManyTopics(config, baseline, waves);
    const kept = residual(baseline, waves);
    const w1 = waves[0]!;
    const released = waves.map((w) => w.releasedAfterMs).filter((x): x is number => x !== null);
    const allHealth = waves.flatMap((w) => [w.healthDuringWave.maxMs, w.afterWave.healthMs ?? 0, w.afterIdle.healthMs ?? 0]);
    const p50s = (xs: Latencies[]) =>
      latencies(
        xs.filter((l) => l.n > l.failed).map((l) => l.p50Ms),
        0,
      ).p50Ms;
    const summary: Record<string, number | null> = {
      topicsCreated: created + freshCounter,
      failedRequests: waves.reduce((n, w) => n + failedRequests(w), 0),
      fdLimit,
      baselineRssMB: baseline.rssMB,
      baselineFds: baseline.fds,
      peakFds: Math.max(...waves.map((w) => w.peakDuringWave.fds)),
      peakOpenTopics: Math.max(...waves.map((w) => w.peakDuringWave.openTopics)),
      fdsPerOpenTopic: w1.afterWave.openTopics ? Math.round((w1.afterWave.topicFileFds / w1.afterWave.openTopics) * 100) / 100 : null,
      // Memory per open topic, from wave 1's peaks (later waves reuse memory the earlier ones left).
      mbPerOpenTopic: ((mb) => (mb === null ? null : Math.round(mb * 1000) / 1000))(mbPerOpenTopic(baseline, w1)),
      // What stays per topic once its object has left: growth after wave 1 per topic created since.
      keptKBPerTopic: kept ? Math.round(kept.kbPerTopic * 10) / 10 : null,
      keptFractionOfOpenTopic: kept ? Math.round(kept.fraction * 1000) / 1000 : null,
      peakRssMB: Math.max(...waves.map((w) => w.peakDuringWave.rssMB)),
      lastIdleRssMB: waves.at(-1)!.afterIdle.rssMB,
      lastIdleFds: waves.at(-1)!.afterIdle.fds,
      // Eviction delay as seen from outside: last request of a wave → its topic files closed (s).
      releasedAfterMinS: released.length ? Math.min(...released) / 1000 : null,
      releasedAfterMaxS: released.length ? Math.max(...released) / 1000 : null,
      healthMaxMs: Math.max(...allHealth),
      healthDuringWavesP50Ms: p50s(waves.map((w) => w.healthDuringWave)),
      healthDuringWavesP90MaxMs: Math.max(...waves.map((w) => w.healthDuringWave.p90Ms)),
      freshPublishP50Ms: p50s(waves.flatMap((w) => [w.afterWave.freshPublishMs, w.afterIdle.freshPublishMs])),
      oldPublishP50Ms: p50s(waves.flatMap((w) => [w.afterWave.oldPublishMs, w.afterIdle.oldPublishMs])),
      topicDatabasesOnDisk: disk.topics,
      diskBytesPerTopic: disk.topics ? Math.round(disk.bytes / disk.topics) : null,
    };
    return { ok: problems.length === 0, problems, config, fdLimit, baseline, waves, summary, durationMs: Date.now() - started };
  } finally {
    await bus.stop();
  }
}
