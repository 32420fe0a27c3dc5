/**
 * The `dovetail-local` command and the README's examples, run as real processes.
 */
import { execFileSync, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Ring, RelayClient } from "../src/index.ts";
import { cleanupRings, freshName, nodeBin } from "./helpers.ts";

afterEach(cleanupRings);

const CLI = fileURLToPath(new URL("../bin/dovetail-local.ts", import.meta.url));
const example = (file: string): string => fileURLToPath(new URL(`../examples/${file}`, import.meta.url));
const cli = (...args: string[]): string => execFileSync(nodeBin(), [CLI, ...args], { encoding: "utf8" });

describe("dovetail-local", () => {
  it("creates a ring and shows its state as JSON", () => {
    const ring = freshName("cli");
    cli("create", ring, "--capacity", "65536", "--crc");
    const stat = JSON.parse(cli("stat", ring, "--json")) as { capacity: number; crc: boolean; head: number; consumers: unknown[] };
    expect(stat).toMatchObject({ capacity: 65536, crc: true, head: 0, consumers: [] });
  });

  it("exits 1 with the error code for a missing ring, 2 for bridge without its arguments", () => {
    const run = (...args: string[]): number => {
      try {
        execFileSync(nodeBin(), [CLI, ...args], { stdio: "ignore" });
        return 0;
      } catch (error) {
        return (error as { status: number }).status;
      }
    };
    expect(run("stat", freshName("missing"))).toBe(1);
    expect(run("bridge")).toBe(2);
  });

  it("runs a relay that a client can reach and that stat shows as a consumer", async () => {
    const ring = freshName("clirelay");
    const w = Ring.create(ring, { capacity: 65536 });
    const proc = spawn(nodeBin(), [CLI, "relay", ring, "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
    try {
      let log = "";
      proc.stderr.setEncoding("utf8");
      const port = await new Promise<number>((resolve, reject) => {
        const watchdog = setTimeout(() => reject(new Error(`watchdog: relay did not start: ${log}`)), 30_000);
        proc.stderr.on("data", (chunk: string) => {
          log += chunk;
          const m = /on 127\.0\.0\.1:(\d+)/.exec(log);
          if (m) {
            clearTimeout(watchdog);
            resolve(Number(m[1]));
          }
        });
      });
      expect(Ring.stat(ring).consumers).toHaveLength(1);
      const got: number[] = [];
      const client = RelayClient.connect({ port, onRecord: (data) => got.push(data[0]!) });
      await client.ready();
      w.publish(Uint8Array.of(42));
      const end = Date.now() + 30_000; // watchdog only
      while (got.length === 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(got).toEqual([42]);
      client.close();
    } finally {
      proc.kill("SIGTERM");
      await new Promise((resolve) => proc.once("exit", resolve));
      w.close();
    }
  });
});

describe("examples", () => {
  it("ring-basic.ts prints the records it published", () => {
    expect(execFileSync(nodeBin(), [example("ring-basic.ts")], { encoding: "utf8" }).trim()).toBe("hello a b c");
  });

  it("relay-basic.ts round-trips through TCP both ways", () => {
    expect(execFileSync(nodeBin(), [example("relay-basic.ts")], { encoding: "utf8" }).trim()).toBe("from the ring | from the client");
  });
});
