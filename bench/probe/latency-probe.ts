// Latency probe (issue 17 item 3): one publisher paced at a fixed rate, one or more subscribers,
// all in this process, raw protocol. Prints publish→deliver from the intended send time and
// from the actual send, publish→ack, and messages per delivered frame / per ack frame.
//
// node bench/probe/latency-probe.ts [--url URL] [--rate 1000] [--seconds 3] [--subs 1]
//   [--pubquery '?hibernate=0'] [--subquery ''] [--acks 'batch'] [--durability sync|async|memory]
// --acks batch opts the publisher into coalesced acks (docs/protocol.md, `acks` frames).
import { isDurability } from "../../protocol/durability.ts";
import { startBus } from "../../test/support/bus-process.ts";
import { setDurability } from "../lib/topic-setup.ts";

const arg = (name: string, fallback?: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const rate = Number(arg("rate", "1000"));
const seconds = Number(arg("seconds", "3"));
const subs = Number(arg("subs", "1"));
const warmup = Math.round(rate * 0.5);
const total = warmup + Math.round(rate * seconds);
const bus = arg("url") ? null : await startBus();
const base = (arg("url") ?? bus!.url).replace("http", "ws");
const topic = `lat.${Date.now()}.${Math.random().toString(36).slice(2, 6)}`;
// --durability sync|async|memory: the topic's level (docs/durability.md), set before anything is sent.
const durability = arg("durability");
if (durability) {
  if (!isDurability(durability)) throw new Error(`--durability: expected sync, async or memory; got ${durability}`);
  await setDurability(arg("url") ?? bus!.url, topic, durability);
}
const open = async (q: string) => {
  const ws = new WebSocket(`${base}/v1/topics/${topic}/ws${q}`);
  await new Promise((r) => ws.addEventListener("open", r, { once: true }));
  return ws;
};
const pubQuery = arg("pubquery", "?hibernate=0")!;
const pub = await open(arg("acks") ? `${pubQuery}${pubQuery ? "&" : "?"}acks=${arg("acks")}` : pubQuery);
const intended = new Float64Array(total);
const sentAt = new Float64Array(total);
const acked = new Float64Array(total);
const delivered: Float64Array[] = [];
let ackFrames = 0;
let deliveryFrames = 0;
let done = 0;
let acks = 0;
let finish: () => void = () => {};
const finished = new Promise<void>((r) => (finish = r));
for (let s = 0; s < subs; s++) {
  const ws = await open(arg("subquery", "")!);
  const got = new Float64Array(total);
  delivered.push(got);
  let n = 0;
  ws.addEventListener("message", (e) => {
    const now = performance.now();
    const f = JSON.parse(e.data as string) as { type: string; messages?: unknown[] };
    if (f.type !== "messages") return;
    deliveryFrames++;
    for (let i = 0; i < f.messages!.length; i++) got[n++] = now;
    if (n === total && ++done === subs) finish();
  });
  ws.send(JSON.stringify({ type: "subscribe", id: 1, from: "latest", credit: 1_000_000 }));
}
await new Promise((r) => setTimeout(r, 300));
pub.addEventListener("message", (e) => {
  const now = performance.now();
  const f = JSON.parse(e.data as string) as { type: string; id?: number; acks?: { id: number }[] };
  if (f.type === "ack") {
    ackFrames++;
    acked[f.id! - 1] = now;
    acks++;
  } else if (f.type === "acks") {
    ackFrames++;
    for (const a of f.acks!) acked[a.id - 1] = now;
    acks += f.acks!.length;
  }
  if (acks === total && subs === 0) finish();
});
const payload = JSON.stringify({ text: "x".repeat(84) });
const interval = 1000 / rate;
const t0 = performance.now();
let seq = 0;
while (seq < total) {
  const due = Math.min(total, Math.floor((performance.now() - t0) / interval) + 1);
  while (seq < due) {
    intended[seq] = t0 + seq * interval;
    sentAt[seq] = performance.now();
    pub.send(`{"type":"publish","id":${seq + 1},"messages":[{"data":${payload}}]}`);
    seq++;
  }
  const wait = t0 + seq * interval - performance.now();
  await new Promise((r) => setTimeout(r, Math.max(0, Math.floor(wait))));
}
await Promise.race([finished, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${acks} acks, ${done} subscribers done`)), 60_000))]);
await new Promise((r) => setTimeout(r, 100));
const pct = (xs: number[], p: number) => {
  const s = xs.slice().sort((a, b) => a - b);
  return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(3));
};
const range = (fn: (i: number) => number[]) => {
  const xs: number[] = [];
  if (fn(warmup).length === 0) return null;
  for (let i = warmup; i < total; i++) xs.push(...fn(i));
  return { p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99) };
};
console.log(
  JSON.stringify({
    rate,
    subs,
    measured: total - warmup,
    deliverFromIntended: range((i) => delivered.map((d) => d[i]! - intended[i]!)),
    deliverFromSend: range((i) => delivered.map((d) => d[i]! - sentAt[i]!)),
    ackFromSend: range((i) => [acked[i]! - sentAt[i]!]),
    messagesPerDeliveryFrame: subs ? Number(((total * subs) / deliveryFrames).toFixed(2)) : null,
    publishesPerAckFrame: Number((total / ackFrames).toFixed(2)),
  }),
);
pub.close();
await bus?.stop();
process.exit(0);
