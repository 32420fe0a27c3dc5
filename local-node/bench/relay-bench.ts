/**
 * TCP relay part of ring-bench.ts: three processes (producer -> ring -> relay -> TCP -> client).
 *   throughput: the producer publishes batches of 32 as fast as the ring allows; the client counts.
 *   latency:    the producer publishes stamped records at a fixed rate; the client measures
 *               CLOCK_MONOTONIC now - stamp per record (producer -> ring -> relay -> socket -> client).
 */
import { spawn } from "node:child_process";
import { FULL, Ring, RelayClient, RelayServer } from "../src/index.ts";

const RECORD_BYTES = 100;
const now = (): bigint => process.hrtime.bigint();

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Child roles, dispatched from ring-bench.ts `--role tcp {kind: ...}`. */
export async function relayBench(p: Record<string, number | string>): Promise<Record<string, number>> {
  const ring = String(p.ring);
  if (p.kind === "relay") {
    // CPU spent while records flow (from the first frame on), independent of other load on the host.
    let cpuAtFirst: NodeJS.CpuUsage | null = null;
    const server = await RelayServer.listen({
      ring,
      port: 0,
      maxQueueBytes: 64 * 1024 * 1024,
      replayBytes: Number(process.env.BENCH_REPLAY_BYTES ?? 32 * 1024 * 1024),
    });
    const sampler = setInterval(() => {
      if (cpuAtFirst === null && server.stats.records > 0) cpuAtFirst = process.cpuUsage();
    }, 1);
    process.stdout.write(`${JSON.stringify({ port: server.port })}\nREADY\n`);
    await new Promise<void>((resolve) => process.once("SIGTERM", () => resolve()));
    clearInterval(sampler);
    const used = process.cpuUsage(cpuAtFirst ?? undefined);
    const stats = { ...server.stats, cpuMs: Math.round((used.user + used.system) / 1000) };
    await server.close();
    return stats;
  }
  if (p.kind === "producer") {
    const w = Ring.create(ring, { onFull: "wait", timeoutMs: 1000 });
    const n = Number(p.records);
    const rate = Number(p.rate);
    const payload = new Uint8Array(RECORD_BYTES);
    const view = new DataView(payload.buffer);
    process.stdout.write("READY\n");
    sleepMs(100);
    let full = 0;
    if (rate > 0) {
      // Fixed rate in 1 ms ticks: rate/1000 records per tick, each stamped just before publish.
      const perTick = Math.max(1, Math.round(rate / 1000));
      const start = Date.now();
      for (let sent = 0, tick = 0; sent < n; tick++) {
        while (Date.now() < start + tick) sleepMs(0.2);
        for (let i = 0; i < perTick && sent < n; ) {
          view.setBigUint64(0, now(), true);
          if (w.publish(payload) === FULL) full++;
          else {
            i++;
            sent++;
          }
        }
      }
    } else {
      const bufs = Array.from({ length: 32 }, () => payload);
      for (let sent = 0; sent < n; ) {
        if (w.publishBatch(bufs) === FULL) full++;
        else sent += 32;
      }
    }
    w.close();
    const cpu = process.cpuUsage();
    return { full, cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
  }
  // client
  const n = Number(p.records);
  const latencies: number[] = [];
  let count = 0;
  let t0 = 0n;
  let t1 = 0n;
  let cpu0: NodeJS.CpuUsage | undefined;
  const measureLatency = Number(p.rate) > 0;
  await new Promise<void>((resolve) => {
    const client = RelayClient.connect({
      port: Number(p.port),
      onRecord: (data) => {
        if (count === 0) {
          t0 = now();
          cpu0 = process.cpuUsage();
        }
        count++;
        if (measureLatency) latencies.push(Number(now() - new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true)));
        if (count === n) {
          t1 = now();
          client.close();
          resolve();
        }
      },
    });
    void client.ready().then(() => process.stdout.write("READY\n"));
    setTimeout(() => {
      client.close();
      resolve();
    }, 300_000).unref(); // watchdog
  });
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? -1;
  const cpu = process.cpuUsage(cpu0);
  return { count, ns: Number(t1 - t0), p50: at(0.5), p99: at(0.99), cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
}

function run(self: string, params: Record<string, string | number>): { ready: Promise<string>; done: Promise<Record<string, number>>; kill: () => void } {
  // BENCH_CPU_PROF=<dir> writes a V8 CPU profile per process (chrome://inspect or speedscope).
  const prof = process.env.BENCH_CPU_PROF
    ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${String(params.kind)}-${String(params.rate ?? 0)}.cpuprofile`]
    : [];
  const proc = spawn(process.execPath, [...prof, self, "--role", "tcp", JSON.stringify(params)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  let onReady: (s: string) => void = () => {};
  const ready = new Promise<string>((resolve) => (onReady = resolve));
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (chunk: string) => {
    out += chunk;
    if (out.includes("READY\n")) onReady(out);
  });
  const done = new Promise<Record<string, number>>((resolve, reject) =>
    proc.on("exit", (code, signal) => {
      const lines = out.trim().split("\n");
      try {
        resolve(JSON.parse(lines[lines.length - 1]!) as Record<string, number>);
      } catch {
        reject(new Error(`tcp ${params.kind} exited ${code ?? signal}`));
      }
    }),
  );
  return { ready, done, kill: () => proc.kill("SIGTERM") };
}

async function once(self: string, records: number, rate: number): Promise<Record<string, number>> {
  const ring = `bench-${process.pid}-tcp-${rate}-${Date.now()}`;
  Ring.create(ring, { capacity: 1 << 24 }).close();
  try {
    const relay = run(self, { kind: "relay", ring });
    const port = (JSON.parse((await relay.ready).split("\n")[0]!) as { port: number }).port;
    const client = run(self, { kind: "client", ring, port, records, rate });
    await client.ready;
    const producer = run(self, { kind: "producer", ring, records, rate });
    const [c, pr] = await Promise.all([client.done, producer.done]);
    relay.kill();
    const rs = await relay.done;
    process.stderr.write(
      `[ring-bench] tcp cpu ms: client ${c!.cpuMs} producer ${pr!.cpuMs} relay ${rs.cpuMs}; wall ${Math.round(c!.ns! / 1e6)} ms; relay frames ${rs.frames}\n`,
    );
    return { ...c!, relayCpuMs: rs.cpuMs! };
  } finally {
    Ring.unlink(ring);
  }
}

export async function relayBenchMain(quick: boolean, self: string): Promise<Record<string, number>> {
  const records = quick ? 1_000_000 : 5_000_000;
  process.stderr.write(`[ring-bench] tcp relay throughput, ${records} records, 1 client\n`);
  const t = await once(self, records, 0);
  const latencyRecords = quick ? 100_000 : 500_000;
  process.stderr.write(`[ring-bench] tcp relay latency at 100,000 records/s, ${latencyRecords} records\n`);
  const l = await once(self, latencyRecords, 100_000);
  return {
    recordsPerSec: Math.round((t.count! - 1) / (t.ns! / 1e9)),
    // CPU per record while records flow: comparable across runs even when the host is busy.
    clientCpuNsPerRecord: Math.round((t.cpuMs! * 1e6) / t.count!),
    relayCpuNsPerRecord: Math.round((t.relayCpuMs! * 1e6) / t.count!),
    received: t.count!,
    latencyAt100kP50Us: Math.round(l.p50! / 100) / 10,
    latencyAt100kP99Us: Math.round(l.p99! / 100) / 10,
  };
}
