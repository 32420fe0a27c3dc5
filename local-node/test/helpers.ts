import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ring } from "../src/index.ts";

const created = new Set<string>();

/** A ring name no other test (or earlier run) uses; removed by cleanupRings(). */
export function freshName(label: string): string {
  const name = `t-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  created.add(name);
  return name;
}

export function cleanupRings(): void {
  for (const name of created) Ring.unlink(name);
  created.clear();
}

/** Node that can run .ts directly: this one if it strips types, else the repo's pinned Node 24. */
export function nodeBin(): string {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 18)) return process.execPath;
  const pinned = fileURLToPath(new URL("../../node_modules/node/bin/node", import.meta.url));
  if (existsSync(pinned)) return pinned;
  throw new Error("tests need Node >= 22.18 to run TypeScript children (the repo pins Node 24 via devDependency `node`)");
}

export const CHILD = fileURLToPath(new URL("./fixtures/ring-child.ts", import.meta.url));

export interface Child {
  proc: ChildProcess;
  /** Every JSON line the child printed so far. */
  messages: Record<string, unknown>[];
  /** Resolve with the first message matching `test` (watchdog: rejects after `watchdogMs`, default 60 s). */
  waitFor(test: (m: Record<string, unknown>) => boolean, watchdogMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/** Run test/fixtures/ring-child.ts (or another script) with a role; its stdout is JSON lines. */
export function spawnChild(args: string[], script = CHILD): Child {
  const proc = spawn(nodeBin(), [script, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const messages: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let buffered = "";
  proc.stdout!.setEncoding("utf8");
  proc.stdout!.on("data", (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("{")) messages.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const listener of listeners) listener();
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  function waitFor(test: (m: Record<string, unknown>) => boolean, watchdogMs = 60_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = messages.find(test);
        if (found === undefined) return false;
        cleanup();
        resolve(found);
        return true;
      };
      const onExit = (): void => {
        setImmediate(() => {
          if (!check()) {
            cleanup();
            reject(new Error(`child ${args.join(" ")} exited before the expected message; got ${JSON.stringify(messages.slice(-5))}`));
          }
        });
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`watchdog: child ${args.join(" ")} did not report in ${watchdogMs} ms; last ${JSON.stringify(messages.slice(-5))}`));
      }, watchdogMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        proc.off("exit", onExit);
      };
      const listener = (): void => void check();
      if (check()) return;
      listeners.add(listener);
      proc.on("exit", onExit);
    });
  }
  return { proc, messages, waitFor, exited };
}

export function killQuietly(child: Child): void {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGKILL");
}
