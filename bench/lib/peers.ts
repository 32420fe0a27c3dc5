/**
 * The systems under test as processes: Redis (two instances: in-memory, and AOF with
 * `appendfsync everysec`), NATS (with JetStream), the Durable Streams reference server and the Dovetail bus, each
 * on a free loopback port with its own temporary folder, stopped (and the folder removed) after.
 *
 * A peer that cannot start is returned as `{ skipped: reason }`, never thrown, so the run goes on
 * without it and the report says why.
 *
 * @example
 * const redis = await startRedis({ durable: false });
 * if ("skipped" in redis) console.log(redis.skipped); else { ...; await redis.stop(); }
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startBus, type BusProcess } from "../../test/support/bus-process.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PEER_READY_TIMEOUT_MS = 15_000;

export interface Peer {
  name: string;
  url: string;
  version: string;
  /** Resident memory of the server process(es), bytes. */
  rssBytes(): number;
  /** CPU time the server process(es) used so far (user + system), ms. */
  cpuMs(): number;
  stop(): Promise<void>;
}

export type PeerResult = Peer | { skipped: string };

function which(cmd: string): string | null {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * Make sure the Debian packages behind the peers are there: installs them when running as root
 * (scripts/install-system-deps.sh), else returns which are missing.
 */
export function ensureSystemPackages(): string[] {
  const wanted = ["redis-server", "nats-server"].filter((c) => !which(c));
  if (wanted.length > 0 && process.getuid?.() === 0) {
    console.log(`bench: installing Debian packages: ${wanted.join(" ")}`);
    spawnSync("bash", [path.join(ROOT, "scripts/install-system-deps.sh"), ...wanted], { stdio: "inherit" });
  }
  return ["redis-server", "nats-server"].filter((c) => !which(c));
}

/** Sum of VmRSS over the given pids, bytes (0 for pids that are gone). */
export function rssOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

/** User + system CPU time of the given pids, ms (0 for pids that are gone). */
export function cpuOf(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the line)
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / USER_HZ;
}

/** Pids whose command name is `comm` and whose process group is `pgid`. */
export function pidsInGroup(pgid: number, comm?: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      if (Number(fields[2]) === pgid && (!comm || name === comm)) out.push(Number(entry));
    } catch {
      // raced with exit
    }
  }
  return out;
}

async function waitForPort(port: number, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + PEER_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`exited with ${proc.exitCode}: ${log().slice(-500)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not listening on ${port} after ${PEER_READY_TIMEOUT_MS} ms: ${log().slice(-500)}`);
}

async function startProcess(name: string, cmd: string, args: string[], port: number, url: string, version: string, dir: string | null): Promise<PeerResult> {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  proc.stdout!.on("data", (c: Buffer) => (output += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (output += c.toString()));
  proc.on("error", (e) => (output += String(e)));
  try {
    await waitForPort(port, proc, () => output);
  } catch (e) {
    proc.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
    return { skipped: `${name} did not start: ${e instanceof Error ? e.message : String(e)}` };
  }
  return {
    name,
    url,
    version,
    rssBytes: () => rssOf(proc.pid ? [proc.pid] : []),
    cpuMs: () => cpuOf(proc.pid ? [proc.pid] : []),
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function redisVersion(): string {
  const r = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  return /v=(\S+)/.exec(r.stdout ?? "")?.[1] ?? "unknown";
}

export function natsVersion(): string {
  const r = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  return /v(\d+\.\d+\.\d+)/.exec(r.stdout ?? "")?.[1] ?? "unknown";
}

/** Redis; `durable` turns on the AOF with fsync every second (Redis's usual durable setting). */
export async function startRedis(options: { durable: boolean }): Promise<PeerResult> {
  const name = options.durable ? "redis-aof" : "redis";
  if (!which("redis-server")) return { skipped: `${name}: redis-server is not installed (Debian package redis-server; run as root to install it)` };
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), `dovetail-bench-${name}-`));
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--daemonize", "no", "--protected-mode", "no"];
  if (options.durable) args.push("--appendonly", "yes", "--appendfsync", "everysec");
  else args.push("--appendonly", "no");
  // Slow subscribers are the server's problem to hold: keep Redis's default pub/sub output limit.
  return startProcess(name, "redis-server", args, port, `redis://127.0.0.1:${port}`, redisVersion(), dir);
}

/** nats-server with JetStream on (`-js`, file store in a temp folder) for the work-queue scenario; core NATS is unchanged by it. */
export async function startNats(): Promise<PeerResult> {
  if (!which("nats-server")) return { skipped: "nats: nats-server is not installed (Debian package nats-server; run as root to install it)" };
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "dovetail-bench-nats-"));
  return startProcess("nats", "nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], port, `nats://127.0.0.1:${port}`, natsVersion(), dir);
}

/** The Durable Streams reference server (file-backed, in its own Node process). */
export async function startDurableStreamsReference(): Promise<PeerResult> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "dovetail-bench-ds-"));
  let version = "unknown";
  try {
    version = (JSON.parse(readFileSync(path.join(ROOT, "node_modules/@durable-streams/server/package.json"), "utf8")) as { version: string }).version;
  } catch {
    return { skipped: "durable-streams-reference: @durable-streams/server is not installed" };
  }
  return startProcess(
    "durable-streams-reference",
    process.execPath,
    [path.join(ROOT, "bench/lib/ds-server.ts"), String(port), dir],
    port,
    `http://127.0.0.1:${port}`,
    version,
    dir,
  );
}

export function workerdVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, "node_modules/workerd/package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export function wranglerVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, "node_modules/wrangler/package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

/**
 * The workerd serving a bus on `port` (`--socket-addr=entry=127.0.0.1:PORT`), and any other
 * workerd in its process group (DOVETAIL_DEV=wrangler would run a proxy workerd beside it).
 * Empty when none is found.
 */
export function workerdPids(port: number): number[] {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (!stat.includes("(workerd)")) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!cmd.includes(`127.0.0.1:${port}\0`) && !cmd.endsWith(`127.0.0.1:${port}`)) continue;
      const pgid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      return pidsInGroup(pgid, "workerd");
    } catch {
      // raced with exit
    }
  }
  return [];
}

/**
 * Bus variables for benchmarks: authentication off (benchmarks measure the data path), plus any
 * given as `BENCH_BUS_VARS="NAME:value ..."` in the environment (e.g. `DOVETAIL_METRICS:off` to
 * measure what counting metrics costs, docs/observability.md).
 */
export const BENCH_BUS_VARS: Record<string, string> = {
  DOVETAIL_AUTH: "off",
  ...Object.fromEntries(
    (process.env.BENCH_BUS_VARS ?? "")
      .split(/\s+/)
      .filter((pair) => pair.includes(":"))
      .map((pair) => [pair.slice(0, pair.indexOf(":")), pair.slice(pair.indexOf(":") + 1)]),
  ),
};

/** The Dovetail bus (scripts/dev.mjs: wrangler bundles, Miniflare serves from workerd, local SQLite in a temp folder). */
export async function startDovetail(options: { verbose?: boolean } = {}): Promise<PeerResult & Partial<{ bus: BusProcess }>> {
  let bus: BusProcess;
  try {
    bus = await startBus({ vars: BENCH_BUS_VARS, verbose: options.verbose ?? false });
  } catch (e) {
    return { skipped: `dovetail: bus did not start: ${e instanceof Error ? e.message.slice(0, 500) : String(e)}` };
  }
  return {
    name: "dovetail",
    url: bus.url,
    version: `workerd ${workerdVersion()}`,
    rssBytes: () => rssOf(workerdPids(bus.port)),
    cpuMs: () => cpuOf(workerdPids(bus.port)),
    stop: () => bus.stop(),
    bus,
  };
}
