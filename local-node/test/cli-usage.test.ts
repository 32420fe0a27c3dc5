/**
 * `dovetail-local` as a real process: `--help` for every command, usage errors (unknown options,
 * bad numbers, missing arguments) as exit 2 with one line on stderr and nothing touched, ring
 * failures as exit 1 with their code, and `tail`/`unlink` doing their job. Walks the command
 * registry (src/cli/registry.ts), so a command added there is checked here too.
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Ring, RingError } from "../src/index.ts";
import { COMMANDS } from "../src/cli/registry.ts";
import { cleanupRings, freshName, nodeBin } from "./helpers.ts";

afterEach(cleanupRings);

const CLI = fileURLToPath(new URL("../bin/dovetail-local.ts", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Run {
  const r = spawnSync(nodeBin(), [CLI, ...args], { encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 2, nothing on stdout, one line on stderr, no stack trace, no NaN. */
function expectUsageError(r: Run, args: string[], message?: RegExp): void {
  expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
  expect({ args, lines: r.stderr.trimEnd().split("\n").length }).toEqual({ args, lines: 1 });
  expect(r.stderr).toMatch(/^dovetail-local: /);
  expect(r.stderr).not.toMatch(/NaN|\n\s+at /);
  if (message) expect(r.stderr).toMatch(message);
}

/** True when no segment by that name exists (the command touched nothing). */
function absent(ring: string): boolean {
  try {
    Ring.stat(ring);
    return false;
  } catch (error) {
    return error instanceof RingError && error.code === "RING_NOT_FOUND";
  }
}

describe("dovetail-local usage", () => {
  it("prints --help for every command and for the whole CLI", () => {
    for (const c of COMMANDS) {
      for (const args of [
        [c.name, "--help"],
        [c.name, "-h"],
        ["help", c.name],
      ]) {
        const r = cli(...args);
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
        expect(r.stdout.startsWith(`Usage: dovetail-local ${[c.name, ...c.args].join(" ")} [options]\n`)).toBe(true);
        for (const option of [...Object.keys(c.options), "help"]) expect(r.stdout).toContain(`--${option}`);
      }
    }
    const main = cli("--help");
    expect(main.code).toBe(0);
    for (const c of COMMANDS) expect(main.stdout).toContain([c.name, ...c.args].join(" "));
    expect(main.stdout).toMatch(/Exit codes: 0 .*, 1 .*, 2 usage/);
  });

  it("exits 2 with one line for an unknown option of every command, an unknown command, or none", () => {
    for (const c of COMMANDS) {
      const args = [c.name, ...c.args.filter((a) => a.startsWith("<")).map(() => freshName("usage")), "--no-such-flag"];
      expectUsageError(
        cli(...args),
        args,
        new RegExp(`^dovetail-local: ${c.name}: Unknown option '--no-such-flag' \\(see dovetail-local ${c.name} --help\\)\\n$`),
      );
      expect(absent(args[1]!)).toBe(true);
    }
    expectUsageError(cli("frob"), ["frob"], /unknown command "frob"/);
    expectUsageError(cli("help", "frob"), ["help", "frob"], /no command "frob"/);
    const none = cli();
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^dovetail-local: missing command\n\ndovetail-local: rings/);
  });

  it("exits 2 with one line naming the flag for bad numbers and bad options, and creates nothing", () => {
    const ring = freshName("badnum");
    const cases: [string[], RegExp][] = [
      [["create", ring, "--capacity", "abc"], /--capacity: expected a positive integer, got "abc"/],
      [["create", ring, "--capacity", "64k"], /--capacity: .*got "64k"/],
      [["create", ring, "--capacity", "1e6"], /--capacity: .*got "1e6"/],
      [["create", ring, "--capacity", ""], /--capacity: .*got ""/],
      [["create", ring, "--capacity", "-5"], /--capacity needs a value \(write --capacity=VALUE/],
      [["create", ring, "--capacity=-5"], /--capacity: expected a positive integer, got "-5"/],
      [["create", ring, "--capacity", "1000"], /RING_INVALID: capacity must be a power of two/],
      [["create", ring, "--consumers", "0"], /--consumers: expected a positive integer, got "0"/],
      [["create", ring, "--staleness-ms", "1.5"], /--staleness-ms: expected a non-negative integer, got "1\.5"/],
      [["create", ring, "--crc=yes"], /Option '--crc' does not take an argument/],
      [["create", "bad/name"], /RING_INVALID: invalid ring name/],
      [["tail", ring, "--count", "0"], /--count: expected a positive integer, got "0"/],
      [["tail", ring, "--count", "all"], /--count: .*got "all"/],
      [["relay", ring, "--port", "70000"], /--port: expected an integer from 0 to 65535, got "70000"/],
      [["relay", ring, "--port", "http"], /--port: .*got "http"/],
      [["bridge", ring, "t.x", "--direction", "edge-to-local", "--max-batch", "0"], /--max-batch: expected a positive integer, got "0"/],
      [["bridge", ring, "t.x", "--direction", "edge-to-local", "--capacity", "big"], /--capacity: .*got "big"/],
      [["bridge", ring, "t.x", "--direction", "edge-to-local", "--from", "1.5"], /from \(edge-to-local\) must be an edge offset/],
      [["bridge", ring, "t.x", "--direction", "sideways"], /direction must be "edge-to-local" or "local-to-edge"/],
      [["bridge", ring, "t.x"], /bridge: give --direction edge-to-local or local-to-edge/],
      [["unlink", ring, "extra"], /unlink: takes <ring> only, got "extra" as well/],
    ];
    for (const [args, message] of cases) expectUsageError(cli(...args), args, message);
    expect(absent(ring)).toBe(true);
    const missing = cli("create");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^dovetail-local: create: missing <ring>\n\nUsage: dovetail-local create <ring> /);
  });

  it("exits 1 with the ring's error code on one line when the ring fails", () => {
    const r = cli("stat", freshName("missing"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dovetail-local: RING_NOT_FOUND: no ring named .*\n$/);
    const ring = freshName("mismatch");
    expect(cli("create", ring, "--capacity", "65536").code).toBe(0);
    const other = cli("create", ring, "--capacity", "131072");
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^dovetail-local: RING_MISMATCH: .*\n$/);
  });

  it("tail --count prints that many records and exits 0; unlink removes the ring", async () => {
    const ring = freshName("tail");
    const w = Ring.create(ring, { capacity: 65536 });
    try {
      const proc = spawn(nodeBin(), [CLI, "tail", ring, "--count", "2"], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      proc.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
      const exited = new Promise<number | null>((resolve) => proc.once("exit", resolve));
      // Publish until the consumer has taken its slot and read two records (watchdog only).
      const end = Date.now() + 30_000;
      while (Ring.stat(ring).consumers.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      w.publish(Uint8Array.of(0xab, 0xcd));
      w.publish(Uint8Array.of(0xef));
      expect(await exited).toBe(0);
      const lines = out.trimEnd().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^\d+\ttype \d+\t2 B\tabcd$/);
      expect(lines[1]).toMatch(/^\d+\ttype \d+\t1 B\tef$/);
    } finally {
      w.close();
    }
    expect(cli("unlink", ring)).toMatchObject({ code: 0, stdout: `removed ${ring}\n` });
    expect(cli("unlink", ring)).toMatchObject({ code: 0, stdout: `no ring ${ring}\n` });
  });
});
