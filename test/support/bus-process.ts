/**
 * Starts the real bus (`scripts/dev.mjs`: wrangler dev, workerd, local SQLite) as a child
 * process for Node-side tests and benchmarks, on a free loopback port with its own state folder.
 *
 * @example
 * const bus = await startBus();
 * await fetch(`${bus.url}/healthz`);
 * await bus.restart();   // kill -9 and start again on the same port and state
 * await bus.stop();
 *
 * Auth: by default the bus runs OPEN (`DOVETAIL_AUTH=off`), so tests that do not care about
 * credentials need none. `startBus({ auth: true })` runs it as deployed, with auth on, and
 * `bus.token` is the development JWT (tenant `default`, every scope) that scripts/dev.mjs
 * minted: send it as `Authorization: Bearer ${bus.token}` or `?token=` on WebSocket URLs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const READY_TIMEOUT_MS = 90_000;

export interface BusOptions {
  port?: number;
  /** Persistence folder; a fresh temporary one by default (removed by stop()). */
  state?: string;
  /** Extra Worker variables, e.g. `{ FLUSH_DELAY_MS: "1" }`. */
  vars?: Record<string, string>;
  /** Print the bus's output (for debugging). */
  verbose?: boolean;
  /** Require credentials, as deployed (default false: the bus runs with DOVETAIL_AUTH=off). */
  auth?: boolean;
  /** More environment for `npm run dev`'s script (as a user would set it in the shell). */
  env?: Record<string, string>;
  /** What start() waits for: `/readyz` answering 200 (default), or only `/healthz` (a bus expected not to be ready). */
  waitFor?: "/readyz" | "/healthz";
}

export interface BusProcess {
  url: string;
  port: number;
  state: string;
  /** With `auth: true`: a development token with every scope in tenant `default`. */
  token: string | undefined;
  /** Kill the process hard (SIGKILL) and start it again on the same port and state. */
  restart(): Promise<void>;
  /** Kill the process hard without restarting. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startBus(options: BusOptions = {}): Promise<BusProcess> {
  const port = options.port ?? (await freePort());
  const ownState = options.state === undefined;
  const state = options.state ?? mkdtempSync(path.join(os.tmpdir(), "dovetail-state-"));
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;

  async function start(): Promise<void> {
    const allVars = options.auth ? { ...options.vars } : { DOVETAIL_AUTH: "off", ...options.vars };
    const vars = Object.entries(allVars)
      .map(([k, v]) => `${k}:${v}`)
      .join(" ");
    const proc = spawn(process.execPath, [path.join(ROOT, "scripts/dev.mjs")], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port), DOVETAIL_STATE: state, DOVETAIL_VARS: vars, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group, so kill() takes workerd down with wrangler
    });
    child = proc;
    let output = "";
    const collect = (chunk: Buffer) => {
      // The tail is enough to say why a start failed; a long run logs a line per request.
      output = (output + chunk.toString()).slice(-64 * 1024);
      if (options.verbose) process.stderr.write(chunk);
    };
    proc.stdout!.on("data", collect);
    proc.stderr!.on("data", collect);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`bus exited with ${proc.exitCode} before it was ready:\n${output}`);
      try {
        const res = await fetch(`${url}${options.waitFor ?? "/readyz"}`);
        if (res.ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`bus was not ready on ${url} within ${READY_TIMEOUT_MS} ms:\n${output}`);
  }

  async function kill(): Promise<void> {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.pid === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      proc.kill("SIGKILL");
    }
    await exited;
    // The port is free once workerd is gone; wait for it so a restart can bind it.
    for (let i = 0; i < 100; i++) {
      try {
        await fetch(`${url}/healthz`);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        return;
      }
    }
  }

  await start();
  return {
    url,
    port,
    state,
    get token() {
      return options.auth ? readFileSync(path.join(state, "dev-token"), "utf8").trim() : undefined;
    },
    start,
    kill,
    async restart() {
      await kill();
      await start();
    },
    async stop() {
      await kill();
      if (ownState) rmSync(state, { recursive: true, force: true });
    },
  };
}
