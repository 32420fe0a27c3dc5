// CPU profile of the bus under a workload (issue 17: "profiles for the goals not met").
// Starts the bus with the V8 inspector on (scripts/dev.mjs, DOVETAIL_INSPECTOR_PORT), starts the
// profiler of the worker's isolate (the gateway and every Durable Object run in it), runs the
// workload command with the bus's URL appended, stops the profiler, writes the .cpuprofile (open
// it in Chrome DevTools or speedscope) and prints the functions with the most self time.
//
// node bench/probe/workerd-profile.ts [--out /tmp/bus.cpuprofile] [--top 30] -- node bench/streams-bench.ts --quick --url
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { freePort, startBus } from "../../test/support/bus-process.ts";

const split = process.argv.indexOf("--");
if (split < 0) throw new Error("usage: workerd-profile.ts [--out F] [--top N] -- <workload command…> (the bus URL is appended)");
const own = process.argv.slice(2, split);
const workload = process.argv.slice(split + 1);
const opt = (name: string, fallback: string) => {
  const i = own.indexOf(`--${name}`);
  return i >= 0 ? own[i + 1]! : fallback;
};
const out = opt("out", "/tmp/bus.cpuprofile");
const top = Number(opt("top", "30"));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** One Chrome DevTools Protocol session over the inspector's WebSocket. */
async function cdp(url: string) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot reach the inspector at ${url}`)), { once: true });
  });
  let id = 0;
  const waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: unknown };
    if (m.id !== undefined) waiting.get(m.id)?.(m);
  });
  return {
    async send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const mine = ++id;
      const answer = await new Promise<{ result?: unknown; error?: unknown }>((resolve) => {
        waiting.set(mine, resolve);
        ws.send(JSON.stringify({ id: mine, method, params }));
      });
      if (answer.error) throw new Error(`${method}: ${JSON.stringify(answer.error)}`);
      return answer.result as T;
    },
    close: () => ws.close(),
  };
}

const inspectorPort = await freePort();
const bus = await startBus({ env: { DOVETAIL_INSPECTOR_PORT: String(inspectorPort) } });
try {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string; title: string }[];
  const target = targets.find((t) => t.title.includes("dovetail")) ?? targets[0];
  if (!target) throw new Error("the inspector lists no isolate");
  const session = await cdp(target.webSocketDebuggerUrl);
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: 200 });
  await session.send("Profiler.start");
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(workload[0]!, [...workload.slice(1), bus.url], { stdio: ["ignore", "inherit", "inherit"] });
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`workload exited with ${code}`))));
  });
  const wallMs = performance.now() - started;
  const { profile } = await session.send<{ profile: { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[] } }>("Profiler.stop");
  session.close();
  writeFileSync(out, JSON.stringify(profile));
  const sampleUs = (profile.endTime - profile.startTime) / Math.max(1, profile.samples.length);
  const self = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = `${functionName || "(anonymous)"} ${url.split("/").pop() ?? ""}:${lineNumber + 1}`;
    if (functionName !== "(idle)" && functionName !== "(program)") busy += hits;
    self.set(name, (self.get(name) ?? 0) + hits);
  }
  const total = profile.samples.length;
  console.log(`profile: ${out}; workload ${Math.round(wallMs)} ms; isolate busy ${((busy / total) * 100).toFixed(1)}% of ${total} samples (${sampleUs.toFixed(0)} µs each)`);
  for (const [name, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((hits / total) * 100).toFixed(1).padStart(5)}%  ${name}`);
  }
} finally {
  await bus.stop();
}
