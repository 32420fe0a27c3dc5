// Revoking a key that touched many topics (issue 18, item 3): how long DELETE /v1/admin/keys/{id}
// takes, whether every live socket of the key closes with 4401, and how /healthz answers meanwhile.
// The key first opens 2 sockets on one topic and keeps them, then opens and closes a socket on
// each of N other topics (and is refused on N/10 topics outside its scope).
// node bench/probe/revoke-probe.ts [--touched 2000] [--parallel 16]
import { startBus } from "../../test/support/bus-process.ts";

const arg = (n: string, d: number) => {
  const i = process.argv.indexOf(`--${n}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const TOUCHED = arg("touched", 2000);
const PARALLEL = arg("parallel", 16);

const bus = await startBus({ auth: true });
const admin = { Authorization: `Bearer ${bus.token}`, "Content-Type": "application/json" };
const prefix = `rv${Date.now().toString(36)}`;
const created = (await (
  await fetch(`${bus.url}/v1/admin/keys`, {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ name: "revoke-probe", scopes: [`publish:${prefix}.>`, `subscribe:${prefix}.>`], rate: { requestsPerSecond: 1e6, burst: 1e6 } }),
  })
).json()) as { id: string; key: string };

const wsUrl = (topic: string, query = "") => `${bus.url.replace("http", "ws")}/v1/topics/${topic}/ws?token=${created.key}${query}`;
/** Open a socket; resolves with it once the first frame (welcome or refusal) arrived. */
const open = (url: string) =>
  new Promise<{ ws: WebSocket; closed: Promise<number>; refused: Promise<number> }>((resolve, reject) => {
    const ws = new WebSocket(url);
    const closed = new Promise<number>((r) => ws.addEventListener("close", (e) => r(e.code)));
    // When the `unauthorized` error frame that precedes the 4401 close arrives.
    const refused = new Promise<number>((r) => ws.addEventListener("message", (e) => String(e.data).includes('"unauthorized"') && r(performance.now())));
    ws.addEventListener("message", () => resolve({ ws, closed, refused }), { once: true });
    ws.addEventListener("error", () => reject(new Error(`socket error on ${url}`)), { once: true });
  });

const live = [await open(wsUrl(`${prefix}.live`)), await open(wsUrl(`${prefix}.live`, "&hibernate=0"))];
const touchStarted = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: PARALLEL }, async () => {
    for (let i = next++; i < TOUCHED + TOUCHED / 10; i = next++) {
      const topic = i < TOUCHED ? `${prefix}.t${i}` : `outside.${prefix}.${i}`;
      const s = await open(wsUrl(topic));
      s.ws.close();
      await s.closed;
    }
  }),
);
const touchSeconds = (performance.now() - touchStarted) / 1000;
await new Promise((r) => setTimeout(r, 500)); // the last closes reach Keys

// /healthz every 20 ms while the revoke runs.
let probing = true;
const health: number[] = [];
const prober = (async () => {
  while (probing) {
    const t = performance.now();
    await fetch(`${bus.url}/healthz`);
    health.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
})();
const t0 = performance.now();
const res = await fetch(`${bus.url}/v1/admin/keys/${created.id}`, { method: "DELETE", headers: admin });
const revokeMs = performance.now() - t0;
const body = (await res.json()) as { closedSockets?: number };
const refusedMs = await Promise.all(live.map(async (s) => Number(((await s.refused) - t0).toFixed(1))));
probing = false;
await prober;
const codes = await Promise.all(live.map((s) => Promise.race([s.closed, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))])));
health.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    touchedTopics: TOUCHED,
    refusedTopics: TOUCHED / 10,
    touchSeconds: Number(touchSeconds.toFixed(1)),
    revokeStatus: res.status,
    revokeMs: Number(revokeMs.toFixed(1)),
    closedSockets: body.closedSockets,
    unauthorizedFrameAfterMs: refusedMs,
    liveSocketCloseCodes: codes,
    healthzMaxMs: Number((health.at(-1) ?? 0).toFixed(1)),
  }),
);
await bus.stop();
process.exit(0);
