// Round-trip probe: one publish at a time, awaited; and publish-to-delivery on a second socket.
// node bench/probe/rtt-probe.ts [--url URL] [--count 2000] [--query '?hibernate=0'] [--durability sync|async|memory]
import { isDurability } from "../../protocol/durability.ts";
import { startBus } from "../../test/support/bus-process.ts";
import { setDurability } from "../lib/topic-setup.ts";

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const count = Number(arg("count") ?? 2000);
const bus = arg("url") ? null : await startBus();
const base = (arg("url") ?? bus!.url).replace("http", "ws");
const topic = `rtt.${Date.now()}`;
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
const pub = await open(arg("query") ?? "");
const sub = await open(arg("subquery") ?? "");
sub.send(JSON.stringify({ type: "subscribe", id: 1, from: "latest", credit: 1_000_000 }));
await new Promise((r) => setTimeout(r, 200));
const ack: number[] = [];
const delivery: number[] = [];
let pendingAck: ((t: number) => void) | null = null;
let pendingDelivery: ((t: number) => void) | null = null;
pub.addEventListener("message", (e) => {
  if ((e.data as string).includes('"ack"')) pendingAck?.(performance.now());
});
sub.addEventListener("message", (e) => {
  if ((e.data as string).startsWith('{"type":"messages"')) pendingDelivery?.(performance.now());
});
const payload = JSON.stringify({ text: "x".repeat(84) });
for (let i = 0; i < count; i++) {
  const t0 = performance.now();
  const a = new Promise<number>((r) => (pendingAck = r));
  const d = new Promise<number>((r) => (pendingDelivery = r));
  pub.send(`{"type":"publish","id":${i + 1},"messages":[{"data":${payload}}]}`);
  const [ta, td] = await Promise.all([a, d]);
  if (i >= 100) {
    ack.push(ta - t0);
    delivery.push(td - t0);
  }
}
const pct = (xs: number[], p: number) =>
  xs
    .slice()
    .sort((x, y) => x - y)
    [Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!.toFixed(3);
console.log(
  JSON.stringify({
    count,
    durability: durability ?? "sync",
    ackP50: pct(ack, 50),
    ackP99: pct(ack, 99),
    deliveryP50: pct(delivery, 50),
    deliveryP99: pct(delivery, 99),
  }),
);
pub.close();
sub.close();
await bus?.stop();
