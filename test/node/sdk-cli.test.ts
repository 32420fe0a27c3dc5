/**
 * The `dovetail` CLI and the SDK examples, run as real processes against a real bus. The usage,
 * `--help` and `--json` checks walk the command registry (sdk/src/cli/registry.ts), so a command
 * added there is checked here too (and a command with no `--json` case fails this file).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../sdk/src/index.ts";
import type { Command } from "../../sdk/src/cli/command.ts";
import { COMMANDS } from "../../sdk/src/cli/registry.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(ROOT, "sdk/bin/dovetail.ts");
const EXAMPLES = path.join(ROOT, "sdk/examples");
/** Nothing listens on port 9: a command that reaches for the bus there exits 3, not 2. */
const UNREACHABLE = "http://127.0.0.1:9";

/** util-linux `script`, to run the CLI with a terminal as stderr; null when this machine has none. */
const SCRIPT = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return "script";
  } catch {
    return null;
  }
})();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a .ts file with this Node (>= 24, type stripping); stdin, stdout and stderr are pipes. */
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

/** Every stdout line as JSON (throws on a line that is not). */
const jsonLines = (stdout: string): unknown[] =>
  stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as unknown);

/** A usage error as the CLI must give it: exit 2, nothing on stdout, one line on stderr, no stack, no NaN. */
function expectUsageError(r: Run, args: string[], message?: RegExp): void {
  expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
  expect({ args, lines: r.stderr.trimEnd().split("\n").length }).toEqual({ args, lines: 1 });
  expect(r.stderr).toMatch(/^dovetail: /);
  expect(r.stderr).not.toMatch(/NaN|\n\s+at /);
  if (message) expect(r.stderr).toMatch(message);
}

/** Arguments that satisfy a command's required positionals without reaching anything. */
function requiredArgs(c: Command): string[] {
  const sample: Record<string, string> = { "<topic>": "cli.sample", "<name>": "sample", "<id>": "0123456789abcdef" };
  return c.args.filter((a) => a.startsWith("<")).map((a) => sample[a] ?? "sample");
}

let counter = 0;
const freshTopic = () => `cli.${Date.now().toString(36)}.${++counter}`;

/** `probe()` again until `done` holds or `ms` pass; the last answer either way (the caller's expect says what was wrong). */
async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() > end) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("dovetail CLI and examples", () => {
  let server: BusProcess;
  let env: Record<string, string>;
  let tmp: string;
  beforeAll(async () => {
    server = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
    env = { DOVETAIL_URL: server.url };
    tmp = mkdtempSync(path.join(os.tmpdir(), "dovetail-cli-"));
  });
  afterAll(async () => {
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("pub publishes one message and says where it was stored; sub prints it back", async () => {
    const topic = freshTopic();
    const first = await run(CLI, ["pub", topic, '{"hello":1}', "--key", "k1", "--header", "kind=greeting"], { env });
    expect(first).toMatchObject({ code: 0, stdout: `stored in ${topic} at offset 0\n`, stderr: "" });
    const second = await run(CLI, ["pub", topic, "plain text", "--json"], { env });
    expect(second.stdout).toBe('{"offset":1}\n');
    const sub = await run(CLI, ["sub", topic, "--from", "earliest", "--limit", "2"], { env });
    expect(sub).toMatchObject({ code: 0, stdout: '{"hello":1}\nplain text\n' });
    const json = await run(CLI, ["sub", topic, "--from", "0", "--limit", "1", "--json"], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ offset: 0, key: "k1", headers: { kind: "greeting" }, data: { hello: 1 } });
  });

  it("pub - publishes one message per stdin line, in order, and writes nothing on stderr when it is not a terminal", async () => {
    const topic = freshTopic();
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ i })).join("\n");
    const r = await run(CLI, ["pub", topic, "-", "--json"], { env, input: `${lines}\n` });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(r.stdout)).toEqual({ count: 2500, firstOffset: 0, lastOffset: 2499 });
    const text = await run(CLI, ["pub", topic, "-"], { env, input: "a\nb\n" });
    expect(text).toMatchObject({ code: 0, stdout: `stored 2 messages in ${topic} at offsets 2500..2501\n`, stderr: "" });
    const bus = connect(server.url);
    const page = await bus.read(topic, { from: 2490, limit: 10 });
    await bus.close();
    expect(page.messages.map((m) => m.data)).toEqual(Array.from({ length: 10 }, (_, k) => ({ i: 2490 + k })));
  });

  it.skipIf(SCRIPT === null)("pub - shows the count and rate on stderr when stderr is a terminal (util-linux script)", async () => {
    const topic = freshTopic();
    const input = path.join(tmp, "lines.txt");
    const output = path.join(tmp, "pub-stdout.txt");
    writeFileSync(input, `${Array.from({ length: 3000 }, (_, i) => String(i)).join("\n")}\n`);
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    // script gives the command a pseudo-terminal; stdin and stdout are redirected to files, so
    // what script prints is what went to stderr, the terminal.
    const command = `${q(process.execPath)} ${q(CLI)} pub ${topic} - < ${q(input)} > ${q(output)}`;
    const terminal = await new Promise<Run>((resolve, reject) => {
      const child = spawn(SCRIPT!, ["-qec", command, "/dev/null"], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    expect(terminal.code).toBe(0);
    expect(terminal.stdout).toMatch(/\r3000 published, \d+ msg\/s average over [\d.]+ s/);
    expect(readFileSync(output, "utf8")).toBe(`stored 3000 messages in ${topic} at offsets 0..2999\n`);
  });

  it("read prints one page and the next offset, as a table or one JSON document, and never waits", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "-"], { env, input: "zero\none\ntwo\nthree\nfour\n" });
    const page = await run(CLI, ["read", topic, "--from", "1", "--limit", "2"], { env });
    expect(page.code).toBe(0);
    const [header, ...rows] = page.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^OFFSET\s+TIME\s+KEY\s+DATA$/);
    expect(rows).toHaveLength(3);
    expect(rows[0]).toMatch(/^1\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+-\s+one$/);
    expect(rows[1]).toMatch(/^2\s+.*\stwo$/);
    expect(rows[2]).toBe("next 3 (head 5, earliest 0)");
    const json = await run(CLI, ["read", topic, "--from", "3", "--json"], { env });
    expect(jsonLines(json.stdout)).toHaveLength(1);
    const doc = JSON.parse(json.stdout) as { messages: { offset: number; data: unknown }[]; next: number; head: number; earliest: number };
    expect(doc).toMatchObject({ next: 5, head: 5, earliest: 0 });
    expect(doc.messages.map((m) => [m.offset, m.data])).toEqual([
      [3, "three"],
      [4, "four"],
    ]);
    // At the tail: an empty page at once (sub would wait here).
    const tail = await run(CLI, ["read", topic, "--from", "5"], { env });
    expect(tail).toMatchObject({ code: 0, stdout: `no messages in ${topic} from there; next 5 (head 5, earliest 0)\n` });
    const never = await run(CLI, ["read", freshTopic(), "--json"], { env });
    expect(JSON.parse(never.stdout)).toEqual({ messages: [], next: 0, head: 0, earliest: 0 });
  });

  it("agents ls lists the registry's agents as a table or JSON; agents watch prints their lifecycle events", async () => {
    const id = `cli-agent.${freshTopic()}`;
    const registered = await fetch(`${server.url}/v1/agents`, {
      method: "POST",
      body: JSON.stringify({ id, capabilities: ["cli-test"], meta: { region: "eu" }, ttlMs: 60_000 }),
    });
    expect(registered.status).toBe(200);
    const table = await run(CLI, ["agents", "ls", "--capability", "cli-test"], { env });
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+NAME\s+PRESENT\s+VIA/);
    expect(table.stdout).toContain(id);
    const json = await run(CLI, ["agents", "ls", "--meta", "region=eu", "--json"], { env });
    expect((JSON.parse(json.stdout) as { id: string }[]).map((a) => a.id)).toContain(id);
    const unknown = await run(CLI, ["agents", "ls", "--capability", "nobody-declares-this"], { env });
    expect({ code: unknown.code, stdout: unknown.stdout }).toEqual({ code: 1, stdout: "" });
    expect(unknown.stderr).toMatch(/nobody-declares-this/);
    // The first event of this bus's registry is this agent's registration (the watch waits for it).
    const watched = await run(CLI, ["agents", "watch", "--from", "earliest", "--limit", "1"], { env });
    expect(watched.stdout).toMatch(new RegExp(`registered\\s+${id.replaceAll(".", "\\.")} \\[cli-test\\]`));
  });

  it("topics retention shows the setting, sets the limits given and keeps the others", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "-"], { env, input: `${Array.from({ length: 10 }, (_, i) => String(i)).join("\n")}\n` });
    const shown = await run(CLI, ["topics", "retention", topic], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^retention\s+max age none, max messages none, max bytes none$/m);
    const count = await run(CLI, ["topics", "retention", topic, "--max-messages", "3", "--json"], { env });
    expect(count.code).toBe(0);
    expect(JSON.parse(count.stdout)).toMatchObject({ topic, head: 10, earliest: 7, messages: 3, retention: { maxMessages: 3, maxAgeMs: 0, maxBytes: 0 } });
    const age = await run(CLI, ["topics", "retention", topic, "--max-age", "1h", "--json"], { env });
    expect(JSON.parse(age.stdout).retention).toEqual({ maxMessages: 3, maxAgeMs: 3_600_000, maxBytes: 0 });
    const text = await run(CLI, ["topics", "retention", topic, "--max-messages", "none", "--max-bytes", "1000"], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^retention\s+max age 1h, max messages none, max bytes 1000$/m);
    expect(text.stdout).toMatch(/^earliest\s+7$/m);
    const info = await run(CLI, ["info", topic, "--json"], { env });
    expect(JSON.parse(info.stdout).retention).toEqual({ maxMessages: 0, maxAgeMs: 3_600_000, maxBytes: 1000 });
  });

  it("topics durability shows the level, sets it, and refuses a level it does not know (usage, exit 2)", async () => {
    const topic = freshTopic();
    const shown = await run(CLI, ["topics", "durability", topic], { env });
    expect({ code: shown.code, stderr: shown.stderr }).toEqual({ code: 0, stderr: "" });
    expect(shown.stdout).toMatch(/^durability\s+sync$/m);
    const set = await run(CLI, ["topics", "durability", topic, "memory", "--json"], { env });
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ topic, durability: "memory" });
    const bad = await run(CLI, ["topics", "durability", topic, "fast"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected one of sync, async, memory; got fast/);
  });

  it("--json prints one JSON document per line on every command", async () => {
    const topic = freshTopic();
    const root = freshTopic().replaceAll(".", "-");
    const key: { id?: string } = {};
    const subscription = `json-${root}`;
    const created = await fetch(`${server.url}/v1/stream/__ds/subscriptions/${subscription}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "webhook", pattern: `${root}-subs/*`, webhook: { url: "https://hooks.example/in" } }),
    });
    expect(created.status).toBe(201);
    const mailFrom = `${root}-from`;
    const mailTo = `${root}-to`;
    for (const id of [mailFrom, mailTo]) {
      const r = await fetch(`${server.url}/v1/agents`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id, ttlMs: 600_000 }),
      });
      expect(r.status).toBe(200);
    }
    /** Per command: its arguments and how many JSON lines it prints (one for a one-shot answer). */
    const cases: Record<string, { args: () => string[]; input?: string; lines: number }> = {
      pub: { args: () => ["pub", topic, '{"n":0}'], lines: 1 },
      "pub -": { args: () => ["pub", topic, "-"], input: '{"n":1}\n{"n":2}\n', lines: 1 },
      sub: { args: () => ["sub", topic, "--from", "earliest", "--limit", "3"], lines: 3 },
      read: { args: () => ["read", topic], lines: 1 },
      info: { args: () => ["info", topic], lines: 1 },
      "topics retention": { args: () => ["topics", "retention", topic, "--max-messages", "100"], lines: 1 },
      "topics durability": { args: () => ["topics", "durability", topic, "async"], lines: 1 },
      // The topic holds 3 messages by now: the group takes all three, one JSON line each.
      consume: { args: () => ["consume", topic, "json-group", "--create-start", "earliest", "--limit", "3"], lines: 3 },
      "groups ls": { args: () => ["groups", "ls", topic], lines: 1 },
      "groups info": { args: () => ["groups", "info", topic, "json-group"], lines: 1 },
      "dlq replay": { args: () => ["dlq", "replay", topic, "json-group"], lines: 1 },
      "groups reset": { args: () => ["groups", "reset", topic, "json-group", "--to", "earliest"], lines: 1 },
      "groups rm": { args: () => ["groups", "rm", topic, "json-group"], lines: 1 },
      "topics ls": { args: () => ["topics", "ls", "--prefix", root], lines: 1 },
      // The registry's events topic holds the events of the agents test above by now.
      "agents ls": { args: () => ["agents", "ls", "--all"], lines: 1 },
      "agents watch": { args: () => ["agents", "watch", "--from", "earliest", "--limit", "1"], lines: 1 },
      "mail send": { args: () => ["mail", "send", mailFrom, "json body", "--to", mailTo, "--subject", `json ${root}`], lines: 1 },
      "mail inbox": { args: () => ["mail", "inbox", mailTo], lines: 1 },
      "mail search": { args: () => ["mail", "search", "json"], lines: 1 },
      "mail thread": { args: () => ["mail", "thread", "1"], lines: 1 },
      "subs ls": { args: () => ["subs", "ls"], lines: 1 },
      "subs info": { args: () => ["subs", "info", subscription], lines: 1 },
      "subs rm": { args: () => ["subs", "rm", subscription], lines: 1 },
      "topics rm": { args: () => ["topics", "rm", topic], lines: 1 },
      bench: { args: () => ["bench", `${root}.bench`, "--rate", "100", "--duration", "1"], lines: 1 },
      top: { args: () => ["top"], lines: 1 },
      "keys create": { args: () => ["keys", "create", `json-${root}`, "--scope", `publish:${root}.>`], lines: 1 },
      "keys list": { args: () => ["keys", "list"], lines: 1 },
      "keys revoke": { args: () => ["keys", "revoke", key.id!], lines: 1 },
    };
    const uncovered = COMMANDS.map((c) => c.name).filter((name) => !(name in cases));
    expect(uncovered, "every registered command needs a --json case here").toEqual([]);
    for (const [name, c] of Object.entries(cases)) {
      const args = [...c.args(), "--json"];
      const r = await run(CLI, args, { env, ...(c.input ? { input: c.input } : {}) });
      expect({ name, code: r.code, stderr: name === "bench" ? "" : r.stderr }).toEqual({ name, code: 0, stderr: "" });
      const docs = jsonLines(r.stdout);
      expect({ name, lines: docs.length }).toEqual({ name, lines: c.lines });
      if (name === "keys create") key.id = (docs[0] as { id: string }).id;
    }
  });

  it("subs info prints a subscription and its cursors, subs rm deletes it; a bad id is a usage error, a missing one exits 1", async () => {
    const root = freshTopic().replaceAll(".", "-");
    const id = `text-${root}`;
    const headers = { "Content-Type": "application/json" };
    await fetch(`${server.url}/v1/stream/${root}/a`, { method: "PUT", headers, body: JSON.stringify([{ n: 0 }, { n: 1 }]) });
    const put = await fetch(`${server.url}/v1/stream/__ds/subscriptions/${id}`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ type: "webhook", pattern: `${root}/*`, webhook: { url: "https://hooks.example/in" }, description: "cli test" }),
    });
    expect(put.status).toBe(201);
    const ls = await run(CLI, ["subs", "ls"], { env });
    expect({ code: ls.code, stderr: ls.stderr }).toEqual({ code: 0, stderr: "" });
    expect(ls.stdout).toMatch(new RegExp(`^${id}\\s+webhook\\s+active\\s+${root}/\\*\\s+1$`, "m"));
    const info = await run(CLI, ["subs", "info", id], { env });
    expect({ code: info.code, stderr: info.stderr }).toEqual({ code: 0, stderr: "" });
    expect(info.stdout).toMatch(new RegExp(`^subscription\\s+${id}$`, "m"));
    expect(info.stdout).toMatch(/^type\s+webhook$/m);
    expect(info.stdout).toMatch(/^webhook\s+https:\/\/hooks\.example\/in$/m);
    expect(info.stdout).toMatch(/^signing key\s+ds_\S+ \(http:\/\/\S+\/v1\/stream\/__ds\/jwks\.json\)$/m);
    expect(info.stdout).toMatch(/^description\s+cli test$/m);
    // Linked at the tail when the subscription was made: the cursor is offset 2's token.
    expect(info.stdout).toMatch(new RegExp(`^${root}/a\\s+glob\\s+0000000000000002_0000000000000000$`, "m"));
    const rm = await run(CLI, ["subs", "rm", id], { env });
    expect({ code: rm.code, stdout: rm.stdout }).toEqual({ code: 0, stdout: `deleted subscription ${id}\n` });
    expect((await run(CLI, ["subs", "ls"], { env })).stdout).not.toContain(id);
    const gone = await run(CLI, ["subs", "info", id], { env });
    expect({ code: gone.code, stdout: gone.stdout }).toEqual({ code: 1, stdout: "" });
    expect(gone.stderr).toMatch(/not_found|not found/);
    expect((await run(CLI, ["subs", "rm", id], { env })).code).toBe(1);
    for (const args of [
      ["subs", "info", "has space"],
      ["subs", "rm", "a/b"],
    ]) {
      expectUsageError(await run(CLI, args, { env }), args);
    }
  });

  it("keys create and keys revoke print the record as name-value lines by default, the secret first", async () => {
    const name = `text-${freshTopic().replaceAll(".", "-")}`;
    const created = await run(CLI, ["keys", "create", name, "--scope", "publish:text.*", "--expires-in", "1d"], { env });
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: "" }); // stderr is not a terminal: no reminder
    const lines = created.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^key\s+dvt_[0-9a-f]{16}_\S+$/);
    const id = /^id\s+([0-9a-f]{16})$/m.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    expect(created.stdout).toMatch(new RegExp(`^name\\s+${name}$`, "m"));
    expect(created.stdout).toMatch(/^scopes\s+publish:text\.\*$/m);
    expect(created.stdout).toMatch(/^expires\s+\d{4}-\d\d-\d\dT[\d:]+Z$/m);
    expect(created.stdout).toMatch(/^revoked\s+-$/m);
    const revoked = await run(CLI, ["keys", "revoke", id!], { env });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).not.toMatch(/^key\s/m);
    expect(revoked.stdout).toMatch(/^revoked\s+\d{4}-\d\d-\d\dT[\d:]+Z$/m);
    expect(revoked.stdout).toMatch(/^closed sockets\s+0$/m);
  });

  it("--version prints the SDK package's version", async () => {
    const r = await run(CLI, ["--version"]);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "sdk/package.json"), "utf8")) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("info prints the topic's facts, with --url taking precedence over the environment", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "1"], { env });
    const r = await run(CLI, ["info", topic, "--url", server.url], { env: { DOVETAIL_URL: UNREACHABLE } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^topic\\s+${topic.replaceAll(".", "\\.")}\\nhead\\s+1\\nearliest\\s+0\\nmessages\\s+1\\n`));
    const json = await run(CLI, ["info", topic, "--json"], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ topic, head: 1, earliest: 0, messages: 1 });
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
    expect(rm).toMatchObject({ code: 0, stdout: `deleted ${root}.x; closed 0 sockets\n` });
    const after = await run(CLI, ["topics", "ls", "--prefix", `${root}.`, "--json"], { env });
    expect((JSON.parse(after.stdout) as { name: string }[]).map((t) => t.name)).toEqual([`${root}.y`]);
    expect((await run(CLI, ["topics", "rm", `${root}.x`], { env })).code).toBe(1); // not_found
    expect((await run(CLI, ["topics", "ls", "--prefix", `${root}-none.`], { env })).stdout).toBe("no topics\n");
  });

  it("top shows the tenant's topics and groups, refreshed --count times, and the figures once with --json", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, '{"n":1}'], { env });
    const put = await fetch(`${server.url}/v1/topics/${topic}/groups/top-group`, { method: "PUT", body: JSON.stringify({ start: "earliest" }) });
    expect(put.status).toBe(201);
    // The topic reports to the Directory within 5 s of its write.
    let json = { topics: [] as { name: string; head: number; gauges: { groups: { group: string; lag: number }[] } }[] };
    for (let i = 0; i < 100 && !json.topics.some((t) => t.name === topic && t.gauges.groups.length > 0); i++) {
      const r = await run(CLI, ["top", "--json"], { env });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      json = JSON.parse(r.stdout) as typeof json;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(json.topics.find((t) => t.name === topic)).toMatchObject({ head: 1, gauges: { groups: [{ group: "top-group", lag: 1 }] } });
    const text = await run(CLI, ["top", "--count", "2", "--interval", "100ms"], { env });
    expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: "" });
    expect(text.stdout.match(/^TOPIC\s+PUB\/S\s+DEL\/S\s+HEAD/gm)).toHaveLength(2);
    expect(text.stdout).toMatch(new RegExp(`^${topic.replaceAll(".", "\\.")}\\s+\\S+\\s+\\S+\\s+1\\s`, "m"));
    expect(text.stdout).toMatch(new RegExp(`^${topic.replaceAll(".", "\\.")}\\s+top-group\\s+1\\s+0$`, "m"));
    expect(text.stdout).toContain("(rates over");
  });

  it("consume prints each job and acks it until --limit (one JSON line per job with --json); groups ls and info show the group", async () => {
    const topic = freshTopic();
    const bus = connect(server.url);
    await bus.publish(topic, { resize: "cat.png" }, { key: "user-1", priority: 5 });
    await bus.publish(topic, "plain");
    const text = await run(CLI, ["consume", topic, "resizers", "--create-start", "earliest", "--limit", "2"], { env });
    expect(text).toEqual({ code: 0, stdout: 'offset 0, delivery 1, key user-1, priority 5: {"resize":"cat.png"}\noffset 1, delivery 1: plain\n', stderr: "" });
    await bus.publish(topic, { n: 2 }, { headers: { kind: "third" } });
    await bus.close();
    // The group exists now: joining it again needs no settings, and the same settings are no conflict.
    const json = await run(CLI, ["consume", topic, "resizers", "--create-start", "earliest", "--limit", "1", "--json"], { env });
    expect({ code: json.code, stderr: json.stderr }).toEqual({ code: 0, stderr: "" });
    // The SDK adds a W3C traceparent to what it publishes (docs/observability.md, "Tracing").
    const headers = { kind: "third", traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/) };
    expect(jsonLines(json.stdout)).toEqual([{ offset: 2, time: expect.any(Number), delivery: 1, priority: 0, headers, data: { n: 2 } }]);

    // The consumers have left: no members, everything acked.
    const ls = await eventually(
      () => run(CLI, ["groups", "ls", topic], { env }),
      (r) => /^resizers\s+3\s+0\s+0\s+0$/m.test(r.stdout),
    );
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^GROUP\s+ACK FLOOR\s+LAG\s+PENDING\s+MEMBERS\nresizers\s+3\s+0\s+0\s+0\n$/);
    const info = await run(CLI, ["groups", "info", topic, "resizers"], { env });
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(new RegExp(`^group\\s+resizers\\ntopic\\s+${topic.replaceAll(".", "\\.")}\\ncreated\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\n`));
    for (const line of [
      /^ack floor\s+3$/m,
      /^head\s+3$/m,
      /^lag\s+0$/m,
      /^pending\s+0$/m,
      /^members\s+0$/m,
      /^ack wait\s+30s$/m,
      /^max deliver\s+5$/m,
      /^backoff\s+none$/m,
      /^ordered by key\s+no$/m,
      new RegExp(`^dead letters\\s+${topic.replaceAll(".", "\\.")}\\.dlq$`, "m"),
      /^stats\s+delivered 3, redelivered 0, acked 3, dead-lettered 0, expired 0$/m,
    ]) {
      expect(info.stdout).toMatch(line);
    }
    const doc = await run(CLI, ["groups", "info", topic, "resizers", "--json"], { env });
    expect(JSON.parse(doc.stdout)).toMatchObject({
      group: "resizers",
      topic,
      ackFloor: 3,
      head: 3,
      lag: 0,
      pendingCount: 0,
      settings: { maxDeliver: 5, ackWaitMs: 30_000 },
    });
    const all = await run(CLI, ["groups", "ls", topic, "--json"], { env });
    expect((JSON.parse(all.stdout) as { group: string }[]).map((g) => g.group)).toEqual(["resizers"]);
    const none = freshTopic();
    expect((await run(CLI, ["groups", "ls", none], { env })).stdout).toBe(`no groups on ${none}\n`);
  });

  it("consume creates a group with the settings given, and refuses other settings for an existing one", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "-"], { env, input: "a\nb\n" });
    const created = await run(
      CLI,
      [
        "consume",
        topic,
        "tuned",
        "--create-start",
        "1",
        "--ack-wait",
        "10s",
        "--max-deliver",
        "3",
        "--max-ack-pending",
        "50",
        "--ordered-by-key",
        "--limit",
        "1",
      ],
      { env },
    );
    expect(created).toEqual({ code: 0, stdout: "offset 1, delivery 1: b\n", stderr: "" });
    const info = await run(CLI, ["groups", "info", topic, "tuned", "--json"], { env });
    expect(JSON.parse(info.stdout).settings).toMatchObject({ ackWaitMs: 10_000, maxDeliver: 3, maxAckPending: 50, orderedByKey: true });
    const conflict = await run(CLI, ["consume", topic, "tuned", "--max-deliver", "4", "--limit", "1"], { env });
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^dovetail: group tuned exists with other settings: .*\[conflict\]\n$/);
    const missing = await run(CLI, ["groups", "info", topic, "nobody"], { env });
    expect(missing).toMatchObject({ code: 1, stdout: "" });
    expect(missing.stderr).toMatch(/\[group_not_found\]\n$/);
  });

  it("groups info shows members and pending jobs; groups reset moves the group and forgets them; groups rm deletes it", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "-"], { env, input: "zero\none\ntwo\n" });
    const bus = connect(server.url);
    const consumer = bus.consume(topic, "holders", { maxAckPending: 1, create: { start: "earliest" } });
    const held = (await consumer.next()).value!;
    expect(held).toMatchObject({ offset: 0, delivery: 1 });
    const info = await run(CLI, ["groups", "info", topic, "holders"], { env });
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/^pending\s+1$/m);
    expect(info.stdout).toMatch(/^members\s+1$/m);
    expect(info.stdout).toMatch(/\n\nMEMBER\s+TRANSPORT\s+HELD\s+MAX ACK PENDING\nm-\S+\s+websocket\s+1\s+1\n/);
    expect(info.stdout).toMatch(/\n\nOFFSET\s+DELIVERY\s+MEMBER\s+DEADLINE\n0\s+1\s+m-\S+\s+\d{4}-\d\d-\d\dT[\d:]+Z\n$/);

    const reset = await run(CLI, ["groups", "reset", topic, "holders", "--to", "2"], { env });
    expect(reset).toEqual({ code: 0, stdout: `reset group holders of ${topic} to offset 2: ack floor 2, head 3, lag 1\n`, stderr: "" });
    await expect(held.ack()).rejects.toMatchObject({ code: "not_held" }); // forgotten by the reset
    const back = await run(CLI, ["groups", "reset", topic, "holders", "--to", "earliest", "--json"], { env });
    expect(JSON.parse(back.stdout)).toMatchObject({ group: "holders", ackFloor: 0, head: 3, lag: 3 });
    const past = await run(CLI, ["groups", "reset", topic, "holders", "--to", "2099-01-01T00:00:00Z", "--json"], { env });
    expect(JSON.parse(past.stdout)).toMatchObject({ ackFloor: 3, lag: 0 });

    const rm = await run(CLI, ["groups", "rm", topic, "holders"], { env });
    expect(rm).toEqual({ code: 0, stdout: `deleted group holders of ${topic}; closed 1 member\n`, stderr: "" });
    await bus.close({ force: true });
    const again = await run(CLI, ["groups", "rm", topic, "holders", "--json"], { env });
    expect(again).toMatchObject({ code: 1, stdout: "" });
    expect(again.stderr).toMatch(/^dovetail: no group holders on .*\[group_not_found\]\n$/);
    expect((await run(CLI, ["groups", "ls", topic], { env })).stdout).toBe(`no groups on ${topic}\n`);
  });

  it("consume --nack with --max-deliver 1 makes dead letters; dlq replay delivers them to the group again", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, "-"], { env, input: "first\nsecond\n" });
    const nacked = await run(CLI, ["consume", topic, "checkers", "--create-start", "earliest", "--max-deliver", "1", "--nack", "--limit", "2"], { env });
    expect(nacked).toEqual({ code: 0, stdout: "offset 0, delivery 1: first\noffset 1, delivery 1: second\n", stderr: "" });
    // Dead letters are published after the nack is stored: follow the dead-letter topic until both are there.
    const letters = await run(CLI, ["sub", `${topic}.dlq`, "--from", "earliest", "--limit", "2", "--json"], { env });
    expect(jsonLines(letters.stdout)).toEqual(
      ["first", "second"].map((data, offset) => ({
        offset,
        time: expect.any(Number),
        data,
        headers: {
          "dovetail-dlq-topic": topic,
          "dovetail-dlq-offset": String(offset),
          "dovetail-dlq-group": "checkers",
          "dovetail-dlq-deliveries": "1",
          "dovetail-dlq-reason": "max_deliver",
          "dovetail-dlq-error": "nacked by dovetail consume --nack",
          traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/), // the published message's, kept
        },
      })),
    );
    const dead = await eventually(
      async () => JSON.parse((await run(CLI, ["groups", "info", topic, "checkers", "--json"], { env })).stdout) as { stats: { deadLettered: number } },
      (g) => g.stats.deadLettered === 2,
    );
    expect(dead).toMatchObject({ ackFloor: 2, pendingCount: 0, stats: { delivered: 2, acked: 0, deadLettered: 2 } });

    const first = await run(CLI, ["dlq", "replay", topic, "checkers", "--limit", "1"], { env });
    expect(first).toEqual({ code: 0, stdout: "replayed 1 of 1 dead letter read; continue with --from 1\n", stderr: "" });
    const rest = await run(CLI, ["dlq", "replay", topic, "checkers", "--from", "1", "--json"], { env });
    expect(JSON.parse(rest.stdout)).toEqual({ replayed: 1, read: 1, next: 2 });
    // Replayed: delivered again with the delivery count starting over, acked this time.
    const redo = await run(CLI, ["consume", topic, "checkers", "--limit", "2", "--json"], { env });
    expect({ code: redo.code, stderr: redo.stderr }).toEqual({ code: 0, stderr: "" });
    expect((jsonLines(redo.stdout) as { offset: number; delivery: number; data: string }[]).map((j) => [j.offset, j.delivery, j.data])).toEqual([
      [0, 1, "first"],
      [1, 1, "second"],
    ]);
    const after = await run(CLI, ["groups", "info", topic, "checkers", "--json"], { env });
    expect(JSON.parse(after.stdout)).toMatchObject({ stats: { acked: 2, deadLettered: 2 } });
    // Nothing left to replay from there.
    expect(JSON.parse((await run(CLI, ["dlq", "replay", topic, "checkers", "--from", "2", "--json"], { env })).stdout)).toEqual({
      replayed: 0,
      read: 0,
      next: 2,
    });
  });

  it("consume ends on Ctrl-C with exit 130: the job in hand is acked and the member leaves the group", async () => {
    const topic = freshTopic();
    await run(CLI, ["pub", topic, '{"job":1}'], { env });
    const child = spawn(process.execPath, [CLI, "consume", topic, "workers", "--create-start", "earliest"], {
      cwd: ROOT,
      env: { ...process.env, DOVETAIL_TOKEN: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
        if (stdout.endsWith("\n")) resolve();
      });
    });
    expect(stdout).toBe('offset 0, delivery 1: {"job":1}\n');
    const member = await run(CLI, ["groups", "info", topic, "workers", "--json"], { env });
    expect(JSON.parse(member.stdout).members).toHaveLength(1);
    child.kill("SIGINT");
    expect(await closed).toBe(130);
    expect(stderr).toBe("");
    const left = await eventually(
      async () => JSON.parse((await run(CLI, ["groups", "info", topic, "workers", "--json"], { env })).stdout) as { members: unknown[] },
      (g) => g.members.length === 0,
    );
    expect(left).toMatchObject({ ackFloor: 1, pendingCount: 0, members: [], stats: { delivered: 1, acked: 1, redelivered: 0 } });
  });

  it("bench runs and prints a summary with rates and percentiles", async () => {
    const topic = freshTopic();
    const r = await run(CLI, ["bench", topic, "--rate", "500", "--subs", "2", "--duration", "2", "--json"], { env });
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(summary.sent).toBeGreaterThan(0);
    expect(summary.received).toBe(summary.sent * 2);
    expect(summary.endToEndMs.p99).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/msg\/s confirmed/);
    const text = await run(CLI, ["bench", freshTopic(), "--rate", "100", "--duration", "1"], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^cli\.\S+: \d+ sent, \d+ confirmed \(\d+ msg\/s\), \d+ received by 1 subscriber\npublish confirm\s+p50 /);
  });

  it("exits 2 with one line on stderr for an unknown option of every command, before reaching the bus", async () => {
    const offline = { DOVETAIL_URL: UNREACHABLE };
    for (const c of COMMANDS) {
      const args = [...c.name.split(" "), ...requiredArgs(c), "--no-such-flag"];
      expectUsageError(
        await run(CLI, args, { env: offline }),
        args,
        new RegExp(`^dovetail: ${c.name}: Unknown option '--no-such-flag' \\(see dovetail ${c.name} --help\\)\\n$`),
      );
    }
    for (const args of [["frob"], ["topics", "nope"], ["groups", "nope"], ["dlq", "nope"], ["help", "nope"]])
      expectUsageError(await run(CLI, args, { env: offline }), args);
  });

  it("exits 2 with one line naming the flag for bad numbers, durations and offsets, before reaching the bus", async () => {
    const offline = { DOVETAIL_URL: UNREACHABLE };
    const cases: [string[], RegExp][] = [
      [["read", "t", "--limit", "0"], /--limit: expected an integer from 1 to 1000, got "0"/],
      [["read", "t", "--limit", "1001"], /--limit: expected an integer from 1 to 1000/],
      [["read", "t", "--limit", "ten"], /--limit: .*got "ten"/],
      [["read", "t", "--limit", ""], /--limit: .*got ""/],
      [["read", "t", "--from", "-1"], /--from needs a value \(write --from=VALUE/],
      [["read", "t", "--from=-1"], /--from: expected an offset, earliest, latest or an ISO date, got "-1"/],
      [["read", "t", "--from", "yesterday"], /--from: .*got "yesterday"/],
      [["read", "t", "--limit"], /Option '--limit <value>' argument missing/],
      [["sub", "t", "--limit", "1e3"], /--limit: expected a positive integer, got "1e3"/],
      [["sub", "t", "--limit", "0x10"], /--limit: .*got "0x10"/],
      [["sub", "t", "--from", "12abc"], /--from: .*got "12abc"/],
      [["topics", "ls", "--limit", "-3"], /--limit needs a value/],
      [["topics", "ls", "--limit", "2.5"], /--limit: expected a positive integer, got "2\.5"/],
      [["topics", "retention", "t", "--max-messages", "lots"], /--max-messages: expected a non-negative integer, got "lots"/],
      [["topics", "retention", "t", "--max-bytes=-1"], /--max-bytes: expected a non-negative integer, got "-1"/],
      [["topics", "retention", "t", "--max-bytes", "99999999999999999999"], /--max-bytes: .*got "99999999999999999999"/],
      [["topics", "retention", "t", "--max-age", "5w"], /--max-age: expected a duration such as 90s, 15m, 12h or 30d \(0 or none: no limit\), got "5w"/],
      [["bench", "t", "--rate", "fast"], /--rate: expected a non-negative integer, got "fast"/],
      [["bench", "t", "--duration", "0"], /--duration: expected a positive integer, got "0"/],
      [["bench", "t", "--size", "1.5"], /--size: .*got "1\.5"/],
      [["pub", "t", "1", "--header", "novalue"], /--header: expected name=value/],
      [["pub", "bad topic", "1"], /topic "bad topic": topic name may hold only/],
      [["info", "a", "b"], /info: takes one <topic> only, got "b" as well/],
      [["read", "t", "--json=yes"], /Option '--json' does not take an argument/],
      [["keys", "create", "n", "--scope", "publish", "--rate", "burst=lots"], /--rate burst: expected a positive number, got "lots"/],
      [["keys", "create", "n", "--scope", "publish", "--expires-in", "1y"], /--expires-in: expected a duration/],
      [["info", "t", "--url", "ftp://x"], /url: expected http\(s\) or ws\(s\)/],
      [["consume", "t", "g", "--limit", "0"], /--limit: expected a positive integer, got "0"/],
      [["consume", "t", "g", "--max-deliver", "0"], /--max-deliver: expected an integer from 1 to 1000, got "0"/],
      [["consume", "t", "g", "--max-deliver", "1001"], /--max-deliver: expected an integer from 1 to 1000, got "1001"/],
      [["consume", "t", "g", "--max-ack-pending", "many"], /--max-ack-pending: expected an integer from 1 to 100000, got "many"/],
      [["consume", "t", "g", "--prefetch", "10001"], /--prefetch: expected an integer from 1 to 10000, got "10001"/],
      [["consume", "t", "g", "--ack-wait", "50ms"], /--ack-wait: expected a duration from 100ms to 12h, got "50ms"/],
      [["consume", "t", "g", "--ack-wait", "13h"], /--ack-wait: expected a duration from 100ms to 12h, got "13h"/],
      [["consume", "t", "g", "--ack-wait", "30"], /--ack-wait: expected a duration such as 90s, 15m, 12h or 30d, got "30"/],
      [["consume", "t", "g", "--create-start", "soon"], /--create-start: expected an offset, earliest, latest or an ISO date, got "soon"/],
      [["consume", "t", "g", "--nack=yes"], /Option '--nack' does not take an argument/],
      [["consume", "t", "bad group"], /group "bad group": a group name is 1–64 characters of A-Z a-z 0-9 _ -/],
      [["consume", "bad topic", "g"], /topic "bad topic": topic name may hold only/],
      [["groups", "ls", "bad topic"], /topic "bad topic": topic name may hold only/],
      [["groups", "info", "t", "g".repeat(65)], /group "g{65}": a group name is 1–64 characters/],
      [["groups", "rm", "t", "g", "h"], /groups rm: takes <topic> <group> only, got "h" as well/],
      [["groups", "reset", "t", "g"], /groups reset: --to is required/],
      [["groups", "reset", "t", "g", "--to", "later"], /--to: expected an offset, earliest, latest or an ISO date, got "later"/],
      [["groups", "reset", "t", "g", "--to=-1"], /--to: expected an offset, earliest, latest or an ISO date, got "-1"/],
      [["dlq", "replay", "t", "g", "--limit", "1001"], /--limit: expected an integer from 1 to 1000, got "1001"/],
      [["dlq", "replay", "t", "g", "--from", "first"], /--from: expected a non-negative integer, got "first"/],
      [["dlq", "replay", "t", "g/h"], /group "g\/h": a group name/],
    ];
    for (const [args, message] of cases) expectUsageError(await run(CLI, args, { env: offline }), args, message);
    // The same commands, well formed, do reach for the bus: exit 3 proves the 2s above were offline.
    const unreachable = await run(CLI, ["read", "t", "--limit", "10"], { env: offline });
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/cannot connect to http:\/\/127\.0\.0\.1:9/);
    expect((await run(CLI, ["pub", "t", "1"], { env: offline })).code).toBe(3);
    expect((await run(CLI, ["groups", "reset", "t", "g", "--to", "earliest"], { env: offline })).code).toBe(3);
    expect((await run(CLI, ["consume", "t", "g", "--limit", "1", "--max-deliver", "3"], { env: offline })).code).toBe(3);
  });

  it("prints --help for every command, every group and the whole CLI", async () => {
    for (const c of COMMANDS) {
      for (const args of [
        [...c.name.split(" "), "--help"],
        [...c.name.split(" "), "-h"],
        ["help", ...c.name.split(" ")],
      ]) {
        const r = await run(CLI, args, { env: { DOVETAIL_URL: UNREACHABLE } });
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
        expect(r.stdout.startsWith(`Usage: dovetail ${[c.name, ...c.args].join(" ")} [options]\n`)).toBe(true);
        for (const option of [...Object.keys(c.options), "json", "url", "token", "help"]) expect(r.stdout).toContain(`--${option}`);
      }
    }
    const groups = [...new Set(COMMANDS.filter((c) => c.name.includes(" ")).map((c) => c.name.split(" ")[0]!))];
    expect(groups).toEqual(expect.arrayContaining(["topics", "keys", "groups", "dlq"]));
    for (const group of groups) {
      const r = await run(CLI, [group, "--help"]);
      expect(r.code).toBe(0);
      for (const c of COMMANDS.filter((x) => x.name.startsWith(`${group} `))) expect(r.stdout).toContain(c.name);
      const missing = await run(CLI, [group]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(new RegExp(`^dovetail: ${group}: missing command\\n\\nUsage: dovetail ${group} <`));
    }
    const main = await run(CLI, ["--help"]);
    expect(main.stdout).toMatch(/Exit codes/);
    for (const c of COMMANDS) expect(main.stdout).toContain([c.name, ...c.args].join(" "));
    const missing = await run(CLI, ["read"], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^dovetail: read: missing <topic>\n\nUsage: dovetail read <topic> /);
    const noGroup = await run(CLI, ["groups", "info", "t"], { env });
    expect(noGroup.code).toBe(2);
    expect(noGroup.stderr).toMatch(/^dovetail: groups info: missing <group>\n\nUsage: dovetail groups info <topic> <group> /);
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
    const retention = await run(CLI, ["topics", "retention", "t", "--max-messages", "5"], { env });
    expect(retention.code).toBe(4);
    const consume = await run(CLI, ["consume", "t", "g", "--limit", "1"], { env });
    expect(consume.code).toBe(4);
    expect(consume.stderr).toMatch(/authentication failed/);
    expect((await run(CLI, ["groups", "ls", "t"], { env })).code).toBe(4);
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
    const env = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: server.token! };
    expect((await run(CLI, ["info", topic], { env })).code).toBe(0);
    const read = await run(CLI, ["read", topic, "--json"], { env });
    expect(JSON.parse(read.stdout)).toMatchObject({ messages: [{ offset: 0, data: { ok: 1 } }], next: 1 });
    const retention = await run(CLI, ["topics", "retention", topic, "--max-messages", "5", "--json"], { env });
    expect(JSON.parse(retention.stdout).retention).toMatchObject({ maxMessages: 5 });
  });
});
