/**
 * Workload 7, cold start: from spawning a server to the first message a subscriber gets, for
 * Dovetail (`scripts/dev.mjs`, i.e. `npm run dev`, on an empty state folder) and the peers; then,
 * on Dovetail, the first delivery on a topic that has never been used (object creation) and on a
 * topic left idle long enough to hibernate.
 *
 * Readiness is polled every POLL_MS, so figures carry up to that much polling delay.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { connect } from "@nats-io/transport-node";
import { freePort } from "../../test/support/bus-process.ts";
import { BENCH_BUS_VARS, ROOT } from "./peers.ts";

const POLL_MS = 20;
const DEADLINE_MS = 90_000;

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

async function until<T>(what: string, fn: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => null);
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${what}: not ready after ${DEADLINE_MS} ms`);
}

function stopGroup(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.pid === undefined) return Promise.resolve();
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  try {
    process.kill(-proc.pid, "SIGKILL");
  } catch {
    proc.kill("SIGKILL");
  }
  return exited;
}

interface Ws {
  ws: WebSocket;
  next: (pred: (f: { type: string; messages?: unknown[] }) => boolean) => Promise<void>;
}

async function openWs(base: string, topic: string): Promise<Ws> {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/topics/${topic}/ws`);
  const waiters: { pred: (f: { type: string }) => boolean; resolve: () => void }[] = [];
  ws.addEventListener("message", (ev) => {
    const f = JSON.parse(String(ev.data)) as { type: string };
    for (const w of [...waiters]) if (w.pred(f)) waiters.splice(waiters.indexOf(w), 1) && w.resolve();
  });
  const next = (pred: (f: { type: string }) => boolean) => new Promise<void>((resolve) => waiters.push({ pred, resolve }));
  const welcome = next((f) => f.type === "welcome");
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket error")));
  });
  await welcome;
  return { ws, next };
}

/** Subscribe on one socket, publish on another, resolve on the delivery. Returns ms taken. */
async function firstDelivery(base: string, topic: string): Promise<{ sub: Ws; pub: Ws; ms: number }> {
  const t0 = process.hrtime.bigint();
  const sub = await openWs(base, topic);
  const subscribed = sub.next((f) => f.type === "subscribed");
  sub.ws.send(`{"type":"subscribe","id":1,"from":"latest","credit":1000}`);
  await subscribed;
  const pub = await openWs(base, topic);
  const delivered = sub.next((f) => f.type === "messages");
  pub.ws.send(`{"type":"publish","id":1,"messages":[{"data":"${"x".repeat(100)}"}]}`);
  await delivered;
  return { sub, pub, ms: ms(t0) };
}

export async function coldStartDovetail(options: { idleMs: number }): Promise<Record<string, number | string>> {
  const port = await freePort();
  const state = mkdtempSync(path.join(os.tmpdir(), "dovetail-bench-cold-"));
  const base = `http://127.0.0.1:${port}`;
  const vars = Object.entries(BENCH_BUS_VARS)
    .map(([k, v]) => `${k}:${v}`)
    .join(" ");
  const t0 = process.hrtime.bigint();
  const proc = spawn(process.execPath, [path.join(ROOT, "scripts/dev.mjs")], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), DOVETAIL_STATE: state, DOVETAIL_VARS: vars },
    stdio: "ignore",
    detached: true,
  });
  const out: Record<string, number | string> = {};
  try {
    await until("dovetail", async () => ((await fetch(`${base}/healthz`)).ok ? true : null));
    out.healthyMs = ms(t0);
    const first = await firstDelivery(base, "bench.cold.first");
    out.firstDeliveryMs = ms(t0);
    first.sub.ws.close();
    first.pub.ws.close();
    // A topic never used before, on a warm bus: object creation + schema + first commit.
    const fresh = await firstDelivery(base, "bench.cold.fresh");
    out.newTopicFirstDeliveryMs = fresh.ms;
    if (options.idleMs > 0) {
      // Leave both sockets open and the topic idle, so the runtime may hibernate the object;
      // then time one publish to its delivery.
      await new Promise((r) => setTimeout(r, options.idleMs));
      const t1 = process.hrtime.bigint();
      const delivered = fresh.sub.next((f) => f.type === "messages");
      fresh.pub.ws.send(`{"type":"publish","id":2,"messages":[{"data":"${"y".repeat(100)}"}]}`);
      await delivered;
      out.afterIdleDeliveryMs = ms(t1);
      out.idleSeconds = options.idleMs / 1000;
    } else {
      out.afterIdleDeliveryMs = "skipped in --quick";
    }
    fresh.sub.ws.close();
    fresh.pub.ws.close();
  } finally {
    await stopGroup(proc);
    rmSync(state, { recursive: true, force: true });
  }
  return out;
}

async function listening(port: number): Promise<true | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(null));
  });
}

export async function coldStartRedis(): Promise<Record<string, number>> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "dovetail-bench-cold-redis-"));
  const t0 = process.hrtime.bigint();
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
    {
      stdio: "ignore",
      detached: true,
    },
  );
  try {
    await until("redis", () => listening(port));
    const healthyMs = ms(t0);
    const sub = new Redis(port, "127.0.0.1");
    const pub = new Redis(port, "127.0.0.1");
    const got = new Promise<void>((r) => sub.once("message", () => r()));
    await sub.subscribe("bench.cold");
    await pub.publish("bench.cold", "x".repeat(100));
    await got;
    const firstDeliveryMs = ms(t0);
    sub.disconnect();
    pub.disconnect();
    return { healthyMs, firstDeliveryMs };
  } finally {
    await stopGroup(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function coldStartNats(): Promise<Record<string, number>> {
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const proc = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore", detached: true });
  try {
    await until("nats", () => listening(port));
    const healthyMs = ms(t0);
    const nc = await connect({ servers: `127.0.0.1:${port}` });
    const got = new Promise<void>((resolve) => nc.subscribe("bench.cold", { max: 1, callback: () => resolve() }));
    await nc.flush();
    nc.publish("bench.cold", "x".repeat(100));
    await got;
    const firstDeliveryMs = ms(t0);
    await nc.close();
    return { healthyMs, firstDeliveryMs };
  } finally {
    await stopGroup(proc);
  }
}
