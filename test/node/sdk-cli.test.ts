/**
 * The `dovetail` CLI and the SDK examples, run as real processes against a real bus.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(ROOT, "sdk/bin/dovetail.ts");
const EXAMPLES = path.join(ROOT, "sdk/examples");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a .ts file with this Node (>= 24, type stripping). */
function run(file: string, args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], {
      cwd: ROOT,
      env: { ...process.env, DOVETAIL_URL: "", DOVETAIL_TOKEN: "", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

let counter = 0;
const freshTopic = () => `cli.${Date.now().toString(36)}.${++counter}`;

describe("dovetail CLI and examples", () => {
  let server: BusProcess;
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
    env = { DOVETAIL_URL: server.url };
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("pub publishes one message and prints its offset; sub prints it back", async () => {
    const topic = freshTopic();
    const first = await run(CLI, ["pub", topic, '{"hello":1}', "--key", "k1", "--header", "kind=greeting"], { env });
    expect(first).toMatchObject({ code: 0, stdout: '{"offset":0}\n' });
    const second = await run(CLI, ["pub", topic, "plain text"], { env });
    expect(second.stdout).toBe('{"offset":1}\n');
    const sub = await run(CLI, ["sub", topic, "--from", "earliest", "--limit", "2"], { env });
    expect(sub).toMatchObject({ code: 0, stdout: '{"hello":1}\nplain text\n' });
    const json = await run(CLI, ["sub", topic, "--from", "0", "--limit", "1", "--json"], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ offset: 0, key: "k1", headers: { kind: "greeting" }, data: { hello: 1 } });
  });

  it("pub - publishes one message per stdin line, in order", async () => {
    const topic = freshTopic();
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ i })).join("\n");
    const r = await run(CLI, ["pub", topic, "-"], { env, input: `${lines}\n` });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ count: 2500, firstOffset: 0, lastOffset: 2499 });
    const bus = connect(server.url);
    const page = await bus.read(topic, { from: 2490, limit: 10 });
    await bus.close();
    expect(page.messages.map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, k) => ({ i: 2490 + k })));
  });

  it("--version prints the SDK package's version", async () => {
    const r = await run(CLI, ["--version"]);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "sdk/package.json"), "utf8")) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("info prints the topic's facts as JSON, with --url taking precedence over the environment", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "1"], { env });
    const r = await run(CLI, ["info", topic, "--url", server.url], { env: { DOVETAIL_URL: "http://127.0.0.1:9" } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ topic, head: 1, earliest: 0, messages: 1 });
  });

  it("topics ls prints a table or JSON of the tenant's topics; topics rm deletes one", async () => {
    const root = freshTopic().replaceAll(".", "-");
    await run(CLI, ["pub", `${root}.x`, "1"], { env });
    await run(CLI, ["pub", `${root}.y`, "2"], { env });
    const table = await run(CLI, ["topics", "ls", "--prefix", `${root}.`], { env });
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^NAME\s+HEAD\s+MESSAGES/);
    expect(table.stdout).toContain(`${root}.x`);
    const json = await run(CLI, ["topics", "ls", "--pattern", `${root}.*`, "--json"], { env });
    expect((JSON.parse(json.stdout) as { name: string }[]).map((t) => t.name)).toEqual([`${root}.x`, `${root}.y`]);
    const rm = await run(CLI, ["topics", "rm", `${root}.x`], { env });
    expect(rm.code).toBe(0);
    expect(JSON.parse(rm.stdout)).toMatchObject({ topic: `${root}.x`, deleted: true });
    const after = await run(CLI, ["topics", "ls", "--prefix", `${root}.`, "--json"], { env });
    expect((JSON.parse(after.stdout) as { name: string }[]).map((t) => t.name)).toEqual([`${root}.y`]);
    expect((await run(CLI, ["topics", "rm", `${root}.x`], { env })).code).toBe(1); // not_found
    expect((await run(CLI, ["topics", "nope"], { env })).code).toBe(2);
  });

  it("bench runs and prints a JSON summary with rates and percentiles", async () => {
    const topic = freshTopic();
    const r = await run(CLI, ["bench", topic, "--rate", "500", "--subs", "2", "--duration", "2"], { env });
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.received).toBe(summary.sent * 2);
    expect(summary.endToEndMs.p99).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/msg\/s confirmed/);
  });

  it("exits 2 on usage errors, 3 when the bus cannot be reached, and prints --help", async () => {
    expect((await run(CLI, ["frob"], { env })).code).toBe(2);
    expect((await run(CLI, ["sub", freshTopic(), "--limit", "many"], { env })).code).toBe(2);
    expect((await run(CLI, ["pub"], { env })).code).toBe(2);
    const unreachable = await run(CLI, ["info", "t"], { env: { DOVETAIL_URL: "http://127.0.0.1:9" } });
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/cannot connect to http:\/\/127\.0\.0\.1:9/);
    const unreachablePub = await run(CLI, ["pub", "t", "1"], { env: { DOVETAIL_URL: "http://127.0.0.1:9" } });
    expect(unreachablePub.code).toBe(3);
    for (const command of ["pub", "sub", "info", "bench"]) {
      const help = await run(CLI, [command, "--help"], { env });
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: dovetail ${command}`));
    }
    expect((await run(CLI, ["--help"], { env })).stdout).toMatch(/Exit codes/);
  });

  it("runs every example in sdk/examples against the bus", async () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".ts"));
    expect(files.length).toBeGreaterThanOrEqual(3);
    const topic = freshTopic();
    for (const file of files.sort()) {
      const r = await run(path.join(EXAMPLES, file), [topic, "5"], { env });
      expect({ file, code: r.code, stderr: r.stderr }).toEqual({ file, code: 0, stderr: "" });
    }
    const pub = await run(path.join(EXAMPLES, "publish.ts"), [freshTopic()], { env });
    expect(pub.stdout).toMatch(/stored at offset 0\nbatch stored at offsets 1\.\.1000\n/);
  });
});

describe("dovetail CLI and SDK with authentication on", () => {
  let server: BusProcess;
  beforeAll(async () => {
    server = await startBus({ auth: true });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("exits 4 with a clear message when the token is refused, over HTTP and WebSocket", async () => {
    const env = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: "not-a-real-key" };
    const info = await run(CLI, ["info", "t"], { env });
    expect(info.code).toBe(4);
    expect(info.stderr).toMatch(/authentication failed/);
    const pub = await run(CLI, ["pub", "t", "1"], { env });
    expect(pub.code).toBe(4);
    const bus = connect(server.url, { token: "not-a-real-key" });
    await expect(bus.publish("t", 1)).rejects.toMatchObject({ code: "unauthorized" });
    const sub = bus.subscribe("t");
    await expect(sub.next()).rejects.toMatchObject({ code: "unauthorized" });
    await bus.close({ force: true });
  });

  it("carries a valid token: Bearer over HTTP, ?token= on WebSockets", async () => {
    expect(server.token).toBeTruthy();
    const bus = connect(server.url, { token: server.token! });
    const topic = freshTopic();
    expect(await bus.publish(topic, { ok: 1 })).toEqual({ offset: 0 });
    const sub = bus.subscribe(topic, { from: 0 });
    expect((await sub.next()).value).toMatchObject({ offset: 0, data: { ok: 1 } });
    expect((await bus.info(topic)).head).toBe(1);
    await bus.close();
    const r = await run(CLI, ["info", topic], { env: { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: server.token! } });
    expect(r.code).toBe(0);
  });
});
