// Quick ingest probe used while designing the storage layout (docs/decisions/003-storage-layout.md).
// node bench/probe/ingest-probe.ts [--batch 100] [--messages 200000] [--inflight 64] [--url URL]
import { startBus } from "../../test/support/bus-process.ts";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const batch = arg("batch", 100);
const total = arg("messages", 200_000);
const inflight = arg("inflight", 64);
const urlArg = process.argv.indexOf("--url");
const flushDelay = process.argv.indexOf("--flush-delay");
const bus = urlArg > 0 ? null : await startBus(flushDelay > 0 ? { vars: { FLUSH_DELAY_MS: process.argv[flushDelay + 1]! } } : {});
const base = urlArg > 0 ? process.argv[urlArg + 1]! : bus!.url;
const topic = `probe.${Date.now()}`;
const payload = { text: "x".repeat(84) }; // ~100 bytes of JSON
const q = process.argv.indexOf("--query");
const ws = new WebSocket(`${base.replace("http", "ws")}/v1/topics/${topic}/ws${q > 0 ? process.argv[q + 1] : ""}`);
await new Promise((r) => ws.addEventListener("open", r, { once: true }));
let acked = 0;
let sent = 0;
let nextId = 1;
const frame = (id: number) => JSON.stringify({ type: "publish", id, messages: Array.from({ length: batch }, () => ({ data: payload })) });
const started = performance.now();
await new Promise<void>((resolve) => {
  ws.addEventListener("message", (e) => {
    const f = JSON.parse(e.data as string);
    if (f.type === "ack") {
      acked += f.count;
      if (acked >= total) return resolve();
      if (sent < total) {
        ws.send(frame(nextId++));
        sent += batch;
      }
    } else if (f.type === "error") {
      console.error(f);
      process.exit(1);
    }
  });
  for (let i = 0; i < inflight && sent < total; i++) {
    ws.send(frame(nextId++));
    sent += batch;
  }
});
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ batch, inflight, messages: acked, seconds: +seconds.toFixed(3), msgPerSec: Math.round(acked / seconds) }));
ws.close();
await bus?.stop();
