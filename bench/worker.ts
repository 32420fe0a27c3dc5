/**
 * One benchmark process: a publisher, a group of subscribers, or a group of work-queue workers,
 * forked by bench/run.ts with an IPC channel. Publishers, subscribers and workers always live in
 * separate processes from each other and from the harness, so no system gets to share an event
 * loop with its own client.
 *
 * Messages from the parent: `{ type: "go" }` (publishers start; workers start taking jobs),
 * `{ type: "stop" }` (report what you have now). Messages to the parent: `{ type: "ready" }`,
 * (workers: `{ type: "consuming" }`, `{ type: "progress", acked }`, and with `reportEach`
 * `{ type: "job", ... }`), then one `{ type: "done", ... }`.
 */
import * as hdr from "hdr-histogram-js";
import { decodePayload, encodePayload, OrderChecker, type CheckSummary } from "./lib/payload.ts";
import { createPublisher, createSubscriber, type ClientName, type Publisher, type Subscriber } from "./lib/systems.ts";
import { createVariantSubscriber, openQueueWorker, type QueueClient, type QueueWorker } from "./lib/work-queue-clients.ts";

export interface PublisherConfig {
  role: "pub";
  system: ClientName;
  url: string;
  /** Publishers this process runs, each on its own connection: topic, and the publisher's index
   * among the publishers of that topic (stamped into every payload). */
  publishers: { topic: string; pub: number }[];
  /** Messages sent first and excluded from every figure. */
  warmup: number;
  /** Measured messages. */
  count: number;
  /** Messages per API call; 1 = unbatched. */
  batch: number;
  /** API calls in flight at most. */
  window: number;
  /** Fixed-rate mode: messages per second (warm-up included), stamped with their intended time. */
  ratePerSec?: number;
}

export interface SubscriberConfig {
  role: "sub";
  system: ClientName;
  url: string;
  /** One subscription per entry (several may share a topic). */
  topics: string[];
  publishersPerTopic: number;
  warmup: number;
  count: number;
  slowRatePerSec?: number;
}

export interface PublisherResult {
  topic: string;
  /** When the measured messages began (fixed rate: when the first one was due), hrtime ns. */
  startNs: string;
  /** When the last measured message was taken by the system, hrtime ns. */
  endNs: string;
  sent: number;
  error?: string;
}

export interface PublisherDone {
  type: "done";
  role: "pub";
  pubs: PublisherResult[];
  error?: string;
  rssBytes: number;
}

export interface SubscriptionResult {
  topic: string;
  check: CheckSummary;
  /** First and last measured delivery (hrtime ns), "0" when none. */
  firstNs: string;
  lastNs: string;
  complete: boolean;
}

export interface SubscriberDone {
  type: "done";
  role: "sub";
  subs: SubscriptionResult[];
  /** Publish-to-delivery latency of measured messages, microseconds, compressed HDR histogram. */
  histogram: string;
  error?: string;
  rssBytes: number;
}

/** Subscriptions a process opens at the same time. */
const CONNECT_PARALLEL = 25;

/** Highest latency the histograms track: 2 minutes in microseconds. */
export const HIGHEST_TRACKABLE_US = 120_000_000;

function send(msg: unknown): void {
  process.send!(msg);
}

async function runPublisher(cfg: PublisherConfig): Promise<void> {
  const clients = await Promise.all(cfg.publishers.map((p) => createPublisher(cfg.system, { url: cfg.url, topic: p.topic })));
  send({ type: "ready" });
  await new Promise<void>((resolve) => process.on("message", (m: { type: string }) => m.type === "go" && resolve()));
  const pubs = await Promise.all(cfg.publishers.map((p, i) => publishLoop(cfg, p.pub, clients[i]!).then((r) => ({ ...r, topic: p.topic }))));
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  const result: PublisherDone = { type: "done", role: "pub", pubs, rssBytes: process.memoryUsage().rss };
  send(result);
}

async function publishLoop(cfg: PublisherConfig, pubIndex: number, pub: Publisher): Promise<Omit<PublisherResult, "topic">> {
  let error: string | undefined;
  let startNs = 0n;
  const total = cfg.warmup + cfg.count;
  let seq = 0;
  let inFlight = 0;
  let wake: (() => void) | null = null;
  const done = () => {
    inFlight--;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const fail = (e: unknown) => {
    error ??= e instanceof Error ? e.message : String(e);
    done();
  };
  const drain = async (limit: number) => {
    while (inFlight > limit) await new Promise<void>((r) => (wake = r));
  };
  const sendUpTo = async (end: number, stamp: (i: number) => bigint) => {
    while (seq < end && !error) {
      const n = Math.min(cfg.batch, end - seq);
      const payloads = new Array<string>(n);
      for (let i = 0; i < n; i++) payloads[i] = encodePayload(pubIndex, seq + i, stamp(seq + i));
      seq += n;
      inFlight++;
      pub.send(payloads, cfg.batch > 1).then(done, fail);
      if (inFlight >= cfg.window) await drain(cfg.window - 1);
    }
  };
  try {
    if (cfg.ratePerSec) {
      // Fixed rate: message i is due at t0 + i/rate and carries that intended time, so a stall
      // anywhere (client, network, server) shows up as latency (no coordinated omission).
      const intervalNs = BigInt(Math.round(1e9 / cfg.ratePerSec));
      const t0 = process.hrtime.bigint();
      startNs = t0 + intervalNs * BigInt(cfg.warmup);
      while (seq < total && !error) {
        const now = process.hrtime.bigint();
        const due = Math.min(total, Number((now - t0) / intervalNs) + 1);
        await sendUpTo(due, (i) => t0 + intervalNs * BigInt(i));
        if (seq < total) {
          const nextAt = t0 + intervalNs * BigInt(seq);
          const waitMs = Number(nextAt - process.hrtime.bigint()) / 1e6;
          await new Promise((r) => setTimeout(r, Math.max(0, Math.floor(waitMs))));
        }
      }
    } else {
      await sendUpTo(cfg.warmup, () => process.hrtime.bigint());
      await drain(0);
      startNs = process.hrtime.bigint();
      await sendUpTo(total, () => process.hrtime.bigint());
    }
    await drain(0);
  } catch (e) {
    error ??= e instanceof Error ? e.message : String(e);
  }
  const endNs = process.hrtime.bigint();
  const result: Omit<PublisherResult, "topic"> = { startNs: String(startNs), endNs: String(endNs), sent: seq };
  if (error) result.error = error;
  return result;
}

async function runSubscribers(cfg: SubscriberConfig): Promise<void> {
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_TRACKABLE_US, numberOfSignificantValueDigits: 3 });
  const expected = cfg.publishersPerTopic * (cfg.warmup + cfg.count);
  const states = cfg.topics.map((topic) => ({ topic, checker: new OrderChecker(cfg.publishersPerTopic), firstNs: 0n, lastNs: 0n }));
  const subscribers: Subscriber[] = [];
  let remaining = states.length;
  let finished = false;
  let error: string | undefined;

  const finish = async () => {
    if (finished) return;
    finished = true;
    await Promise.all(subscribers.map((s) => s.close().catch((e: unknown) => (error ??= e instanceof Error ? e.message : String(e)))));
    const result: SubscriberDone = {
      type: "done",
      role: "sub",
      subs: states.map((s) => ({
        topic: s.topic,
        check: s.checker.summary(cfg.warmup + cfg.count),
        firstNs: String(s.firstNs),
        lastNs: String(s.lastNs),
        complete: s.checker.received >= expected,
      })),
      histogram: hdr.encodeIntoCompressedBase64(histogram),
      rssBytes: process.memoryUsage().rss,
    };
    if (error) result.error = error;
    send(result);
  };

  const subscribe = async (state: (typeof states)[number]) => {
    const onMessage = (payload: string) => {
      const now = process.hrtime.bigint();
      const d = state.checker.accept(payload);
      if (d && d.seq >= cfg.warmup) {
        if (state.firstNs === 0n) state.firstNs = now;
        state.lastNs = now;
        const us = Number(now - d.sentNs) / 1000;
        histogram.recordValue(Math.min(HIGHEST_TRACKABLE_US, Math.max(1, Math.round(us))));
      }
      if (state.checker.received === expected && --remaining === 0 && !cfg.slowRatePerSec) void finish();
    };
    const onFailure = (reason: string) => {
      error ??= reason;
      void finish();
    };
    const options = cfg.slowRatePerSec ? { slowRatePerSec: cfg.slowRatePerSec, onFailure } : { onFailure };
    const ep = { url: cfg.url, topic: state.topic };
    const system = cfg.system;
    subscribers.push(
      system === "dovetail-subscribe" || system === "dovetail-group" || system === "dovetail-raw-group"
        ? await createVariantSubscriber(system, ep, onMessage, options)
        : await createSubscriber(system === "dovetail-raw-subscribe" ? "dovetail" : system, ep, onMessage, options),
    );
  };
  // Connect in groups: 1,000 subscribers one after another would spend seconds on round trips.
  for (let i = 0; i < states.length && !error; i += CONNECT_PARALLEL) {
    await Promise.all(
      states.slice(i, i + CONNECT_PARALLEL).map((state) =>
        subscribe(state).catch((e: unknown) => {
          error ??= e instanceof Error ? e.message : String(e);
        }),
      ),
    );
  }
  process.on("message", (m: { type: string }) => {
    if (m.type === "stop") void finish();
  });
  if (error) void finish();
  else send({ type: "ready" });
}

// ---------------------------------------------------------------------------------------------
// Work-queue workers (bench/lib/work-queue.ts)

export interface QueueWorkerConfig {
  role: "queue";
  client: QueueClient;
  url: string;
  topic: string;
  group: string;
  ackWaitMs: number;
  /** Messages in flight to the whole group (Dovetail group maxAckPending, JetStream max_ack_pending). */
  groupMaxAckPending: number;
  /** Workers in this process, each on its own connection. */
  workers: number;
  prefetch: number;
  /** `hold`: take jobs, never ack them. */
  mode: "ack" | "hold";
  /** Send `{ type: "job" }` to the parent for every job (the redelivery case: a few jobs). */
  reportEach: boolean;
}

export interface QueueJobReport {
  type: "job";
  seq: number;
  /** hrtime ns when it arrived. */
  ns: string;
  delivery: number;
}

export interface QueueWorkerDone {
  type: "done";
  role: "queue";
  /** Sequence numbers of the jobs whose ack the system confirmed, one entry per confirmation. */
  acked: number[];
  /** Jobs received (deliveries), and how many of them the system marked as a redelivery. */
  received: number;
  redelivered: number;
  /** First job received and last ack confirmed (hrtime ns), "0" when none. */
  firstNs: string;
  lastAckNs: string;
  /** CPU time (user + system) of this process from `go` until it reported, µs. */
  cpuUs: number;
  error?: string;
  rssBytes: number;
}

/** How often a worker process tells the parent how many acks it has. */
const PROGRESS_EVERY_MS = 50;

async function runQueueWorkers(cfg: QueueWorkerConfig): Promise<void> {
  const acked: number[] = [];
  let received = 0;
  let redelivered = 0;
  let firstNs = 0n;
  let lastAckNs = 0n;
  let error: string | undefined;
  let finished = false;
  let cpuAtGo: NodeJS.CpuUsage | null = null;
  const workers: QueueWorker[] = [];
  const seqOf = (payload: string) => {
    const d = decodePayload(payload);
    if (!d) throw new Error(`malformed payload ${payload.slice(0, 40)}`);
    return d.seq;
  };
  const finish = async () => {
    if (finished) return;
    finished = true;
    clearInterval(progress);
    const cpu = cpuAtGo ? process.cpuUsage(cpuAtGo) : { user: 0, system: 0 };
    await Promise.all(workers.map((w) => w.close().catch((e: unknown) => (error ??= e instanceof Error ? e.message : String(e)))));
    const done: QueueWorkerDone = {
      type: "done",
      role: "queue",
      acked,
      received,
      redelivered,
      firstNs: String(firstNs),
      lastAckNs: String(lastAckNs),
      cpuUs: cpu.user + cpu.system,
      rssBytes: process.memoryUsage().rss,
    };
    if (error) done.error = error;
    send(done);
  };
  let reported = 0;
  const progress = setInterval(() => {
    if (acked.length !== reported) send({ type: "progress", acked: (reported = acked.length) });
  }, PROGRESS_EVERY_MS);
  const onFailure = (reason: string) => {
    error ??= reason;
    void finish();
  };
  for (let i = 0; i < cfg.workers; i++) {
    const name = `w${process.pid}-${i}`;
    const worker = await openQueueWorker(
      cfg.client,
      { url: cfg.url, topic: cfg.topic, group: cfg.group, ackWaitMs: cfg.ackWaitMs },
      {
        name,
        prefetch: cfg.prefetch,
        hold: cfg.mode === "hold",
        onJob(payload, delivery) {
          const now = process.hrtime.bigint();
          if (firstNs === 0n) firstNs = now;
          received++;
          if (delivery > 1) redelivered++;
          if (cfg.reportEach) send({ type: "job", seq: seqOf(payload), ns: String(now), delivery } satisfies QueueJobReport);
        },
        onAcked(payload) {
          lastAckNs = process.hrtime.bigint();
          acked.push(seqOf(payload));
        },
        onFailure,
      },
      cfg.groupMaxAckPending,
    );
    workers.push(worker);
  }
  process.on("message", (m: { type: string }) => {
    if (m.type === "stop") void finish();
    if (m.type === "go") {
      cpuAtGo = process.cpuUsage();
      Promise.all(workers.map((w) => w.start())).then(
        () => send({ type: "consuming" }),
        (e: unknown) => onFailure(e instanceof Error ? e.message : String(e)),
      );
    }
  });
  send({ type: "ready" });
}

process.on("message", function first(m: PublisherConfig | SubscriberConfig | QueueWorkerConfig | { type: string }) {
  if (!("role" in m)) return;
  process.off("message", first);
  const run = m.role === "pub" ? runPublisher(m) : m.role === "sub" ? runSubscribers(m) : runQueueWorkers(m);
  run.catch((e: unknown) => {
    send({
      type: "done",
      role: m.role,
      error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      subs: [],
      pubs: [],
      acked: [],
      histogram: "",
      rssBytes: 0,
    });
  });
});
// The parent going away ends this process: no orphan keeps a port or a core busy.
process.on("disconnect", () => process.exit(0));
