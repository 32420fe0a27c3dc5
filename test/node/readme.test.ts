/**
 * The README's quick start, run as written against a bus started the README way (`npm run dev`'s
 * script, auth on): the curl block in bash, each answer compared with the `# …` line under its
 * command; then the SDK block as a Node script. Only the port and the state folder differ from a
 * reader's machine: they are rewritten from `localhost:8787` and `.dovetail/state`.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const README = readFileSync(path.join(ROOT, "README.md"), "utf8");

/** The fenced blocks of `lang` that follow the line containing `after`. */
function blockAfter(after: string, lang: string): string {
  const start = README.indexOf(after);
  expect(start, `README mentions ${after}`).toBeGreaterThanOrEqual(0);
  const open = README.indexOf(`\`\`\`${lang}\n`, start);
  const close = README.indexOf("\n```", open + 4);
  return README.slice(open + lang.length + 4, close + 1);
}

function run(
  command: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  stopWhen?: (out: string) => boolean,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (stopWhen?.(stdout)) child.kill("SIGTERM");
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Compare JSON answers, ignoring the server's timestamps. */
const withoutTimes = (text: string) => JSON.parse(text.replace(/"time":\d+/g, '"time":0')) as unknown;

describe("README quick start", () => {
  let bus: BusProcess;
  const local = (text: string) => text.replaceAll("localhost:8787", `127.0.0.1:${bus.port}`).replaceAll("http://127.0.0.1:8787", bus.url);
  beforeAll(async () => {
    bus = await startBus({ auth: true });
  });
  afterAll(async () => {
    await bus?.stop();
  });

  it("the curl block answers what the README says", async () => {
    const block = local(blockAfter("Try it with curl", "sh")).replaceAll(".dovetail/state", bus.state);
    const commands = block.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
    const expected = block
      .split("\n")
      .filter((l) => l.startsWith("# {"))
      .map((l) => l.slice(2));
    expect(commands.length).toBeGreaterThanOrEqual(3);
    // One bash, so `export` carries to the next lines as in a reader's shell; a newline after each answer.
    const script = commands.map((c) => (c.startsWith("curl") ? `${c}; echo` : c)).join("\n");
    const file = path.join(bus.state, "readme-curl.sh");
    writeFileSync(file, script);
    const r = await run("bash", ["-e", file], {}, 60_000);
    expect(r.stderr).not.toMatch(/error/i);
    const answers = r.stdout.trim().split("\n");
    expect(answers.map(withoutTimes)).toEqual(expected.map(withoutTimes));
  });

  it("the SDK block runs as written and prints the first message", async () => {
    const block = local(blockAfter("or with the SDK", "ts")).replace('"@dovetail/sdk"', JSON.stringify(path.join(ROOT, "sdk/src/index.ts")));
    const file = path.join(bus.state, "readme-sdk.ts");
    writeFileSync(file, block);
    const r = await run(process.execPath, [file], { DOVETAIL_TOKEN: bus.token! }, 60_000, (out) => out.split("\n").length > 2);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("0 { hello: 'world' }"); // what the curl block published, read from 0
    expect(lines[1]).toBe("1 { hello: 1 }");
  });
});
