/** Probe: sequential mail sends and inbox reads against a fresh bus, mean latency (for profiling the send path). */
import { startBus } from "../../test/support/bus-process.ts";

const bus = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
const url = bus.url;
const json = { "Content-Type": "application/json" };
try {
  for (const id of ["a", "b"]) await fetch(`${url}/v1/agents`, { method: "POST", headers: json, body: JSON.stringify({ id, ttlMs: 600_000 }) });
  const n = 300;
  for (const round of [1, 2]) {
    let t = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await fetch(`${url}/v1/mail/messages`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ from: "a", to: ["b"], subject: `s ${i}`, bodyMd: "hello world ".repeat(20) }),
      });
      if (r.status !== 201) throw new Error(await r.text());
      await r.arrayBuffer();
    }
    console.log(`round ${round} send: ${((performance.now() - t) / n).toFixed(2)} ms each`);
    t = performance.now();
    for (let i = 0; i < n; i++) await (await fetch(`${url}/v1/mail/inbox/b?limit=50`)).arrayBuffer();
    console.log(`round ${round} inbox: ${((performance.now() - t) / n).toFixed(2)} ms each`);
    t = performance.now();
    for (let i = 0; i < n; i++)
      await (await fetch(`${url}/v1/topics/x.y/messages`, { method: "POST", headers: json, body: JSON.stringify({ data: { i } }) })).arrayBuffer();
    console.log(`round ${round} topic publish: ${((performance.now() - t) / n).toFixed(2)} ms each`);
    t = performance.now();
    for (let i = 0; i < n; i++) await (await fetch(`${url}/healthz`)).arrayBuffer();
    console.log(`round ${round} healthz: ${((performance.now() - t) / n).toFixed(2)} ms each`);
  }
} finally {
  await bus.stop();
}
