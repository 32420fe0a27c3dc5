/**
 * SDK benchmark (issue 4's speed note), through @dovetail/sdk against a running bus:
 *   1. `publisher().send` in a loop: confirmed messages per second (100-byte messages);
 *   1b. issue 17: the obvious loop, `pub.send(x)` n times then await the last, default options,
 *       against the same loop with `await pub.ready()` before each send, at 200,000 and 1,000,000
 *       messages (20,000 and 100,000 with --quick), alternating, 3 runs each (1 with --quick, or --runs):
 *       median msg/s of each, their ratio, and the heap the plain loop's waiting sends hold;
 *   2. `publish()` awaited one at a time: p50 / p99 ms;
 *   3. end-to-end latency (send → delivered) at a steady rate with 10 subscribers: p50 / p99 ms.
 *
 * Run: node bench/sdk-bench.ts --url http://127.0.0.1:8787 [--token T] [--quick] [--only loop,obvious,awaited,e2e] [--runs N (of 1b)]
 * Without --url it starts a local bus (test/support/bus-process.ts) and stops it after.
 * The last stdout line is one JSON object with every figure; progress goes to stderr.
 */
import { parseArgs } from "node:util";
import v8 from "node:v8";
import vm from "node:vm";
import * as hdr from "hdr-histogram-js";
import { connect, type Bus } from "../sdk/src/index.ts";
import { startBus, type BusProcess } from "../test/support/bus-process.ts";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    quick: { type: "boolean" },
    rate: { type: "string" },
    subs: { type: "string" },
    only: { type: "string" },
    runs: { type: "string" },
  },
});
const QUICK = values.quick ?? false;
/** Which parts run (default all): `loop` (1), `obvious` (1b), `awaited` (2), `e2e` (3); the others' figures are null. */
const ONLY = new Set((values.only ?? "loop,obvious,awaited,e2e").split(","));
const SIZE_BYTES = 100;
const LOOP_MESSAGES = QUICK ? 50_000 : 300_000;
const PLAIN_LOOP_COUNTS = QUICK ? [20_000, 100_000] : [200_000, 1_000_000];
const OBVIOUS_RUNS = Number(values.runs ?? (QUICK ? 1 : 3));
const AWAITED_PUBLISHES = QUICK ? 500 : 3000;
const E2E_RATE = Number(values.rate ?? 10_000);
const E2E_SUBSCRIBERS = Number(values.subs ?? 10);
const E2E_DURATION_MS = QUICK ? 3000 : 10_000;
const E2E_WARMUP_MS = QUICK ? 500 : 2000;

const log = (line: string) => process.stderr.write(`${line}\n`);
const topicName = (what: string) => `bench.sdk.${what}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 6)}`;
/** A 100-byte JSON payload (as the topic measures it: the JSON text of `data`). */
function payload(extra: Record<string, number>): Record<string, unknown> {
  const base = JSON.stringify({ ...extra, pad: "" }).length;
  return { ...extra, pad: "x".repeat(Math.max(0, SIZE_BYTES - base)) };
}
function histogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}
const ms = (h: ReturnType<typeof histogram>, p: number) => Math.round(h.getValueAtPercentile(p) / 10) / 100; // µs → ms, 2 decimals

async function sendLoop(bus: Bus) {
  const topic = topicName("loop");
  const pub = bus.publisher(topic, { lingerMs: 1, maxBatch: 1000, maxInFlight: 16, maxQueued: 50_000 });
  await pub.send(payload({ n: -1 })); // connect first
  const message = payload({ n: 0 });
  const start = performance.now();
  let confirmed = 0;
  for (let i = 0; i < LOOP_MESSAGES; i++) {
    if (pub.queued >= 50_000) await pub.ready();
    pub.send(message).then(
      () => confirmed++,
      () => {},
    );
  }
  await pub.flush();
  const seconds = (performance.now() - start) / 1000;
  const rate = Math.round(confirmed / seconds);
  log(`publisher().send loop: ${confirmed} confirmed in ${seconds.toFixed(2)} s = ${rate} msg/s`);
  return { messages: confirmed, seconds: Math.round(seconds * 1000) / 1000, msgPerSec: rate };
}

/**
 * `count` sends on a fresh topic with default publisher options, then await the last (confirms
 * come in send order). `withReady`: `await pub.ready()` before each send, so at most `maxQueued`
 * sends are held; without, every send is made at once and most wait for room.
 */
async function obviousLoop(bus: Bus, count: number, withReady: boolean) {
  const pub = bus.publisher(topicName(withReady ? "ready" : "plain"));
  await pub.send(payload({ n: -1 })); // connect first
  const message = payload({ n: 0 });
  const start = performance.now();
  let last: Promise<number> = Promise.resolve(-1);
  for (let i = 0; i < count; i++) {
    if (withReady) await pub.ready();
    last = pub.send(message);
  }
  await last;
  const seconds = (performance.now() - start) / 1000;
  const rate = Math.round(count / seconds);
  log(`obvious loop, ${count} sends${withReady ? " with ready()" : ""}: ${seconds.toFixed(2)} s = ${rate} msg/s`);
  return rate;
}

/**
 * Issue 17, item 1: the plain loop within 10 % of the ready() loop, at each count. The two
 * alternate, OBVIOUS_RUNS times each, so that noise from a busy machine lands on both; medians.
 */
async function obviousLoops(bus: Bus) {
  const out: Record<string, unknown> = {};
  for (const count of PLAIN_LOOP_COUNTS) {
    const ready: number[] = [];
    const plain: number[] = [];
    for (let run = 0; run < OBVIOUS_RUNS; run++) {
      ready.push(await obviousLoop(bus, count, true));
      plain.push(await obviousLoop(bus, count, false));
    }
    const readyMsgPerSec = median(ready);
    const plainMsgPerSec = median(plain);
    out[String(count)] = {
      readyMsgPerSec,
      plainMsgPerSec,
      plainVsReady: Math.round((plainMsgPerSec / readyMsgPerSec) * 100) / 100,
      readyRuns: ready.join(" "),
      plainRuns: plain.join(" "),
      heldBytesPerSend: await heldPerWaitingSend(bus, count),
    };
  }
  return out;
}

/** Untimed: the heap `count` sends hold right after the plain loop made them, per send (full GCs before and after). */
async function heldPerWaitingSend(bus: Bus, count: number): Promise<number> {
  const pub = bus.publisher(topicName("held"));
  await pub.send(payload({ n: -1 }));
  const message = payload({ n: 0 });
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  let last: Promise<number> = Promise.resolve(-1);
  for (let i = 0; i < count; i++) last = pub.send(message);
  collectGarbage();
  const bytes = Math.round((process.memoryUsage().heapUsed - before) / count);
  log(`obvious loop, ${count} sends: ${bytes} B of heap per send while they wait (${pub.queued} held, the rest waiting for room)`);
  await last;
  return bytes;
}

/** A full GC, as `node --expose-gc` offers it (turned on here so that `npm run bench:sdk` needs no flag). */
function collectGarbage(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

async function awaitedPublish(bus: Bus) {
  const topic = topicName("awaited");
  await bus.publish(topic, payload({ n: -1 }));
  const h = histogram();
  for (let i = 0; i < AWAITED_PUBLISHES; i++) {
    const t = performance.now();
    await bus.publish(topic, payload({ n: i }));
    h.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
  }
  const out = { count: AWAITED_PUBLISHES, p50Ms: ms(h, 50), p99Ms: ms(h, 99), maxMs: ms(h, 100) };
  log(`publish() awaited: p50 ${out.p50Ms} ms, p99 ${out.p99Ms} ms`);
  return out;
}

async function endToEnd(url: string, token: string | undefined) {
  const topic = topicName("e2e");
  const publisherBus = connect(url, token ? { token } : {});
  const subscriberBus = connect(url, token ? { token } : {});
  await publisherBus.publish(topic, payload({ t: 0 }));
  const h = histogram();
  let received = 0;
  let measuring = false;
  const subs = Array.from({ length: E2E_SUBSCRIBERS }, () => subscriberBus.subscribe<{ t: number }>(topic, { from: 1, buffer: 5000 }));
  const reading = subs.map(async (s) => {
    for await (const m of s) {
      received++;
      if (measuring && m.data.t > 0) h.recordValue(Math.max(1, Math.round((performance.now() - m.data.t) * 1000)));
    }
  });
  const pub = publisherBus.publisher(topic, { lingerMs: 0, maxBatch: 1000, maxInFlight: 16 });
  const start = performance.now();
  let sent = 0;
  const total = E2E_DURATION_MS + E2E_WARMUP_MS;
  while (performance.now() - start < total) {
    const elapsed = performance.now() - start;
    measuring = elapsed >= E2E_WARMUP_MS;
    const due = Math.floor((elapsed * E2E_RATE) / 1000);
    while (sent < due) {
      pub.send(payload({ t: performance.now() })).catch(() => {});
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await pub.flush();
  const deadline = performance.now() + 15_000;
  while (received < sent * E2E_SUBSCRIBERS && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  for (const s of subs) s.close();
  await Promise.allSettled(reading);
  await publisherBus.close({ force: true });
  await subscriberBus.close({ force: true });
  const out = {
    rate: E2E_RATE,
    subscribers: E2E_SUBSCRIBERS,
    seconds: E2E_DURATION_MS / 1000,
    sent,
    delivered: received,
    expected: sent * E2E_SUBSCRIBERS,
    p50Ms: ms(h, 50),
    p99Ms: ms(h, 99),
    maxMs: ms(h, 100),
  };
  log(
    `end-to-end at ${E2E_RATE} msg/s x ${E2E_SUBSCRIBERS} subscribers: p50 ${out.p50Ms} ms, p99 ${out.p99Ms} ms (${received}/${sent * E2E_SUBSCRIBERS} delivered)`,
  );
  return out;
}

let local: BusProcess | null = null;
let url = values.url;
if (!url) {
  log("no --url: starting a local bus");
  local = await startBus();
  url = local.url;
}
const token = values.token ?? process.env.DOVETAIL_TOKEN ?? undefined;
try {
  const bus = connect(url, token ? { token } : {});
  const loop = ONLY.has("loop") ? await sendLoop(bus) : null;
  const obvious = ONLY.has("obvious") ? await obviousLoops(bus) : null;
  const awaited = ONLY.has("awaited") ? await awaitedPublish(bus) : null;
  await bus.close({ force: true });
  const e2e = ONLY.has("e2e") ? await endToEnd(url, token) : null;
  const result = {
    bench: "sdk",
    quick: QUICK,
    url,
    messageBytes: SIZE_BYTES,
    publisherSendLoop: loop,
    obviousSendLoop: obvious,
    publishAwaited: awaited,
    endToEnd: e2e,
    targets: { sendLoopMsgPerSec: 100_000, obviousLoopPlainVsReady: 0.9, publishAwaitedP50Ms: 2, endToEndP99Ms: 10 },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await local?.stop();
}
