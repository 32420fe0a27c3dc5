/**
 * One benchmark process: a publisher or a group of subscribers, forked by bench/run.ts with an
 * IPC channel. Publishers and subscribers always live in separate processes from each other and
 * from the harness, so no system gets to share an event loop with its own client.
 *
 * Messages from the parent: `{ type: "go" }` (publishers start), `{ type: "stop" }` (report what
 * you have now). Messages to the parent: `{ type: "ready" }`, then one `{ type: "done", ... }`.
 */
import * as hdr from "hdr-histogram-js";
import { encodePayload, OrderChecker, type CheckSummary } from "./lib/payload.ts";
import { createPublisher, createSubscriber, type Publisher, type Subscriber, type SystemName } from "./lib/systems.ts";

export interface PublisherConfig {
  role: "pub";
  system: SystemName;
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
  system: SystemName;
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
    subscribers.push(await createSubscriber(cfg.system, { url: cfg.url, topic: state.topic }, onMessage, options));
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

process.on("message", function first(m: PublisherConfig | SubscriberConfig | { type: string }) {
  if (!("role" in m)) return;
  process.off("message", first);
  const run = m.role === "pub" ? runPublisher(m) : runSubscribers(m);
  run.catch((e: unknown) => {
    send({ type: "done", role: m.role, error: e instanceof Error ? (e.stack ?? e.message) : String(e), subs: [], pubs: [], histogram: "", rssBytes: 0 });
  });
});
// The parent going away ends this process: no orphan keeps a port or a core busy.
process.on("disconnect", () => process.exit(0));
