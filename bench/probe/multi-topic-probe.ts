// Many topics at once: T topics x P plain publisher sockets, F frames in flight each, S hibernatable subscribers per topic.
// node bench/probe/multi-topic-probe.ts [--topics 10] [--pubs 10] [--inflight 100] [--subs 0] [--seconds 5]
import { startBus } from "../../test/support/bus-process.ts";
const arg = (n: string, d: number) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const T = arg("topics", 10),
  P = arg("pubs", 10),
  F = arg("inflight", 100),
  S = arg("subs", 0),
  SECONDS = arg("seconds", 5);
const PLAIN_SUBS = process.argv.includes("--plain-subs");
const bus = await startBus();
const ws = (t: string, q = "") =>
  new Promise<WebSocket>((res) => {
    const w = new WebSocket(`${bus.url.replace("http", "ws")}/v1/topics/${t}/ws${q}`);
    w.addEventListener("open", () => res(w), { once: true });
  });
const payload = JSON.stringify({ text: "x".repeat(84) });
let acked = 0,
  delivered = 0,
  running = true;
const starters: (() => void)[] = [];
for (let t = 0; t < T; t++) {
  const topic = `mt.${Date.now()}.${t}`;
  for (let s = 0; s < S; s++) {
    const w = await ws(topic, PLAIN_SUBS ? "?hibernate=0" : "");
    w.addEventListener("message", (e) => {
      const d = String(e.data);
      if (d.startsWith('{"type":"messages"')) delivered += JSON.parse(d).messages.length;
    });
    w.send(JSON.stringify({ type: "subscribe", id: 1, from: "latest", credit: 1_000_000 }));
  }
  for (let p = 0; p < P; p++) {
    const w = await ws(topic, "?hibernate=0");
    let id = 0;
    const send = () => w.send(`{"type":"publish","id":${++id},"messages":[{"data":${payload}}]}`);
    w.addEventListener("message", (e) => {
      if (String(e.data).startsWith('{"type":"ack"')) {
        acked++;
        if (running) send();
      }
    });
    starters.push(() => {
      for (let i = 0; i < F; i++) send();
    });
  }
}
// Open every socket first, then start all publishers at once.
for (const start of starters) start();
const t0 = performance.now();
const a0 = acked;
await new Promise((r) => setTimeout(r, SECONDS * 1000));
running = false;
const secs = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({ topics: T, pubs: P, inflight: F, subs: S, ackedPerSec: Math.round((acked - a0) / secs), deliveredPerSec: Math.round(delivered / secs) }),
);
await bus.stop();
process.exit(0);
