// Where a topic's time goes while consumer-group members ack a backlog (issue 12): serves the bus
// in this process (as scripts/dev.mjs does, plus a V8 inspector port), publishes a backlog, lets
// W members take and ack it, and prints acked/s, how many acks each `settle` frame carried, and
// the workerd isolate's CPU profile (self time by function) over the consuming phase.
//
// node bench/probe/groups-profile.ts [--messages 20000] [--workers 10] [--client raw|sdk|sdk-plain] [--plain] [--concurrent]
//   raw: one `settle` per `jobs` frame (hibernatable socket, or plain with --plain);
//   sdk / sdk-plain: `bus.consume` + `job.ack()` (bench/lib/work-queue-clients.ts), sockets hibernatable / plain;
//   --concurrent: publish while the members consume (the profile then includes the ingest).
// The profile is also written to $TMPDIR/groups-profile.cpuprofile (open it in Chrome DevTools).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../../test/support/bus-process.ts";
import { ROOT } from "../lib/peers.ts";
import { encodePayload } from "../lib/payload.ts";
import { createPublisher, openDovetail, type RawFrame } from "../lib/systems.ts";
import { openQueueWorker } from "../lib/work-queue-clients.ts";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "20000" },
    workers: { type: "string", default: "10" },
    client: { type: "string", default: "raw" },
    plain: { type: "boolean", default: false },
    concurrent: { type: "boolean", default: false },
  },
});
const N = Number(values.messages);
const W = Number(values.workers);
const client = values.client!;
const PREFETCH = 100;

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

// The bus, served like scripts/dev.mjs does, with an inspector.
const require = createRequire(path.join(ROOT, "package.json"));
const wrangler = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
const state = mkdtempSync(path.join(os.tmpdir(), "groups-profile-"));
const outdir = path.join(state, "bundle");
execFileSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir], {
  cwd: ROOT,
  stdio: "ignore",
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
});
process.chdir(ROOT);
const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
const { workerOptions } = unstable_getMiniflareWorkerOptions("wrangler.toml") as {
  workerOptions: Record<string, unknown> & { bindings?: Record<string, unknown>; serviceBindings?: Record<string, unknown> };
};
const options = Object.fromEntries(Object.entries(workerOptions).filter(([k, v]) => k !== "modulesRules" && k !== "rootPath" && v !== undefined));
const port = await freePort();
const inspectorPort = await freePort();
const mf = new Miniflare({
  ...convertV4MiniflareOptions({
    ...options,
    bindings: { ...workerOptions.bindings, DOVETAIL_AUTH: "off", DOVETAIL_JWT_SECRET: "probe".repeat(13) },
    serviceBindings: { ...workerOptions.serviceBindings, DOVETAIL_STORAGE: () => Response.json({ free: 1e12, reserve: 8e6 }) },
    modules: true,
    scriptPath: path.join(outdir, "index.js"),
    modulesRoot: outdir,
    host: "127.0.0.1",
    port,
    cf: false,
  } as Parameters<typeof convertV4MiniflareOptions>[0]),
  resourcePersistencePath: path.join(state, "v3"),
  inspectorPort,
} as ConstructorParameters<typeof Miniflare>[0]);
await mf.ready;
const url = `http://127.0.0.1:${port}`;

// The Chrome DevTools protocol on the worker's isolate.
const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string; title: string }[];
const target = targets.find((t) => /core:user/.test(t.title)) ?? targets.find((t) => !/core:entry|MINIFLARE|store/.test(t.title)) ?? targets[0]!;
const cdp = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((r) => cdp.addEventListener("open", r, { once: true }));
let cdpId = 0;
const answers = new Map<number, (v: unknown) => void>();
cdp.addEventListener("message", (e) => {
  const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown };
  if (m.id !== undefined) answers.get(m.id)?.(m.result);
});
const call = <T = unknown>(method: string, params: Record<string, unknown> = {}) =>
  new Promise<T>((resolve) => {
    const id = ++cdpId;
    answers.set(id, resolve as (v: unknown) => void);
    cdp.send(JSON.stringify({ id, method, params }));
  });
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 });

// The backlog (or, with --concurrent, the publisher: 100 messages per frame, 10 frames in flight).
const topic = `probe.${Date.now().toString(36)}`;
const pub = await createPublisher("dovetail", { url, topic });
const publishAll = async (inFlight: number) => {
  const sending = new Set<Promise<void>>();
  for (let i = 0; i < N; i += 100) {
    const p = pub.send(
      Array.from({ length: Math.min(100, N - i) }, (_, k) => encodePayload(0, i + k, 0n)),
      true,
    );
    sending.add(p);
    void p.finally(() => sending.delete(p));
    if (sending.size >= inFlight) await Promise.race(sending);
  }
  await Promise.all(sending);
};
if (!values.concurrent) await publishAll(1);

// The members.
let acked = 0;
let first = 0;
let last = 0;
let done!: () => void;
const finished = new Promise<void>((r) => (done = r));
const perFrame = new Map<number, number>();
const count = (n: number) => perFrame.set(n, (perFrame.get(n) ?? 0) + 1);
const ep = { url, topic, group: "g", ackWaitMs: 60_000 };
const groupMax = 10_000;
await call("Profiler.start");
const closers: (() => unknown)[] = [];
if (client === "raw") {
  const create = { start: "earliest", ackWaitMs: ep.ackWaitMs, maxAckPending: groupMax };
  await Promise.all(
    Array.from({ length: W }, async () => {
      let id = 2;
      const sizes = new Map<number, number>();
      let consuming!: () => void;
      const joined = new Promise<void>((r) => (consuming = r));
      const ws: WebSocket = await openDovetail(
        { url, topic },
        "subscriber",
        (f: RawFrame) => {
          if (f.type === "consuming") consuming();
          else if (f.type === "jobs" && f.jobs) {
            if (!first) first = performance.now();
            const sid = id++;
            sizes.set(sid, f.jobs.length);
            count(f.jobs.length);
            ws.send(JSON.stringify({ type: "settle", id: sid, op: "ack", jobs: f.jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })) }));
          } else if (f.type === "settled") {
            acked += sizes.get(f.id!) ?? 0;
            last = performance.now();
            if (acked === N) done();
          } else if (f.type === "error") console.error(f);
        },
        !values.plain,
      );
      ws.send(JSON.stringify({ type: "consume", id: 1, group: ep.group, maxAckPending: PREFETCH, create }));
      await joined;
      closers.push(() => ws.close());
    }),
  );
} else {
  // Count the acks of each settle frame the SDK sends.
  const Native = globalThis.WebSocket;
  globalThis.WebSocket = class extends Native {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      if (typeof data === "string" && data.startsWith('{"type":"settle"')) count((JSON.parse(data) as { jobs: unknown[] }).jobs.length);
      super.send(data);
    }
  } as typeof WebSocket;
  const workers = [];
  for (let i = 0; i < W; i++) {
    const w = await openQueueWorker(
      client === "sdk" ? "dovetail" : "dovetail-plain",
      ep,
      {
        name: `w${i}`,
        prefetch: PREFETCH,
        hold: false,
        onJob() {
          if (!first) first = performance.now();
        },
        onAcked() {
          acked++;
          last = performance.now();
          if (acked === N) done();
        },
        onFailure: (r) => console.error(r),
      },
      groupMax,
    );
    workers.push(w);
    closers.push(() => w.close());
  }
  await Promise.all(workers.map((w) => w.start()));
}
if (values.concurrent) await publishAll(10);
await finished;
await pub.close();
const { profile } = await call<{ profile: CpuProfile }>("Profiler.stop");

const frames = [...perFrame.values()].reduce((a, b) => a + b, 0);
console.log(
  `${client}${values.plain ? " (plain socket)" : ""}${values.concurrent ? ", published while consuming" : ""}: ${N} acked by ${W} members at ${Math.round(N / ((last - first) / 1000))} acked/s`,
);
console.log(
  `settle frames: ${frames} (${(N / frames).toFixed(1)} acks each); most common sizes: ${[...perFrame]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([n, c]) => `${n} acks × ${c}`)
    .join(", ")}`,
);
const file = path.join(os.tmpdir(), "groups-profile.cpuprofile");
writeFileSync(file, JSON.stringify(profile));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const cf = byId.get(profile.samples[i]!)!.callFrame;
  const key = `${cf.functionName || "(anonymous)"} ${cf.url.split("/").pop()}:${cf.lineNumber + 1}`;
  const us = profile.timeDeltas[i] ?? 0;
  self.set(key, (self.get(key) ?? 0) + us);
  total += us;
}
console.log(`workerd isolate, self time, ${Math.round(total / 1000)} ms sampled (${file}):`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${(us / 1000).toFixed(1).padStart(8)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
}
for (const close of closers) await close();
cdp.close();
await mf.dispose();
rmSync(state, { recursive: true, force: true });
process.exit(0);
