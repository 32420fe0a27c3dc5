/**
 * Everything the docs tell a reader to run, run as written: every shell and TypeScript block of
 * README.md, sdk/README.md, docs/security.md, docs/streams.md, docs/groups.md, docs/requests.md,
 * docs/agents.md, docs/patterns.md, docs/mcp.md, docs/mail.md, docs/observability.md and
 * docs/durability.md, in order,
 * against a real bus
 * started the README way (`npm run dev`'s script, auth on; test/support/bus-process.ts), a fresh
 * bus per file so a later block may use what an earlier one created. Also: the local-node figures
 * of README.md and local-node/README.md are the ones in bench/results/latest.json.
 *
 * The convention, for whoever writes docs:
 * - Every fenced block names its language. `sh`, `bash`, `shell` and `console` blocks run in bash
 *   (`set -euo pipefail`), `ts` and `typescript` blocks as Node scripts (Node 24, type stripping)
 *   from a file inside the repository, so `@dovetail/sdk` resolves as the package it is (here to
 *   its sources, through the `@dovetail/source` condition vitest.node.config.ts puts in
 *   NODE_OPTIONS, as for every process the tests start; decision 025). Other languages (`text`,
 *   `json`, ...) never run.
 * - Each block starts where the README's quick start leaves a reader: the repository as working
 *   folder, `DOVETAIL_TOKEN` holding the development token (`export DOVETAIL_TOKEN=$(cat
 *   .dovetail/state/dev-token)`), `DOVETAIL_URL` the bus, the packages' bins (`dovetail`) on PATH.
 *   Only the bus's address and state folder differ from a reader's machine: `localhost:8787`,
 *   `127.0.0.1:8787` and `.dovetail/state` are rewritten to this test's bus (and docs/streams.md's
 *   bus answers an idle long-poll sooner: see DOCS).
 * - A block must exit 0 within BLOCK_TIMEOUT_MS with nothing like "error" on stderr, unless it is
 *   marked by an HTML comment on the line above its fence:
 *   - `<!-- doc-test: skip: <reason> -->`: not run (deploys, needs a Worker or a second machine...);
 *     the reason is required and shows as the skipped test's name.
 *   - `<!-- doc-test: follows -->`: the block does not end by itself (it follows a live
 *     subscription); it is stopped once all the output it shows has appeared.
 * - Shown output is checked. In a shell block, the `# ` lines right under a command are what that
 *   command prints (so explanations go at the end of a command line, or in prose); in a `console`
 *   block, the lines under a `$ ` command. For a TypeScript block, a block marked
 *   `<!-- doc-test: output -->` right after it (a `text` block) is what the script prints. Lines
 *   compare exactly, JSON lines as JSON with every `"time"` taken as equal; `…` inside a line
 *   stands for any characters, a line that is only `…` for any number of lines.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { docBlocks, type DocBlock, outputLines, outputMatches, shellSteps } from "../support/doc-blocks.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** A block that runs longer than this has hung (the slowest, the streams tour, takes a few seconds). */
const BLOCK_TIMEOUT_MS = 60_000;

const DOCS: { file: string; vars?: Record<string, string> }[] = [
  { file: "README.md" },
  { file: "sdk/README.md" },
  { file: "docs/security.md" },
  // The tour's long-poll at the tail answers 204 after STREAM_LONG_POLL_MS (20 s by default):
  // the same answer after 1 s, so the test does not sit idle.
  { file: "docs/streams.md", vars: { STREAM_LONG_POLL_MS: "1000" } },
  { file: "docs/groups.md" },
  { file: "docs/requests.md" },
  { file: "docs/agents.md" },
  { file: "docs/patterns.md" },
  { file: "docs/mcp.md" },
  { file: "docs/mail.md" },
  { file: "docs/observability.md" },
  { file: "docs/durability.md" },
];

/** Where the blocks of one file run. */
interface Place {
  url: string;
  state: string;
  token: string;
  /** A folder inside the repository for the TypeScript blocks' files. */
  scripts: string;
}

/** The bus of this test in place of the reader's `npm run dev` on port 8787. */
function localize(text: string, place: Place): string {
  const host = new URL(place.url).host;
  return text.replaceAll("localhost:8787", host).replaceAll("127.0.0.1:8787", host).replaceAll(".dovetail/state", place.state);
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** True when the test stopped it (a `follows` block whose output had all appeared). */
  stopped: boolean;
  timedOut: boolean;
}

/** Runs a process in its own group; `stopWhen` ends it (SIGTERM to the group) once it holds. */
function run(command: string, args: string[], place: Place, stopWhen?: (stdout: string) => boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env,
      PATH: `${path.join(ROOT, "node_modules/.bin")}${path.delimiter}${process.env.PATH}`,
      DOVETAIL_URL: place.url,
      DOVETAIL_TOKEN: place.token,
    };
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const result: Run = { code: null, stdout: "", stderr: "", stopped: false, timedOut: false };
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      result.timedOut = true;
      signal("SIGKILL");
    }, BLOCK_TIMEOUT_MS);
    child.stdout.on("data", (chunk: Buffer) => {
      result.stdout += chunk.toString();
      if (!result.stopped && stopWhen?.(result.stdout)) {
        result.stopped = true;
        signal("SIGTERM");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (result.stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ ...result, code });
    });
  });
}

/** Printed after each shell command, so each command's output can be told apart. */
const STEP_END_PRINTF = "printf '\\n<<doc-test: step %d ended>>\\n'";
const STEP_SPLIT = /\n<<doc-test: step \d+ ended>>\n/;

const show = (lines: string[]) => lines.map((l) => `    ${l}`).join("\n");

/** What went wrong with a finished or stopped run, apart from its output. */
function runProblems(r: Run, follows: boolean): string[] {
  const problems: string[] = [];
  const tail = `\n  stdout:\n${show(outputLines(r.stdout.replace(new RegExp(STEP_SPLIT, "g"), "\n")).slice(-20))}\n  stderr:\n${show(outputLines(r.stderr).slice(-20))}`;
  if (r.timedOut)
    problems.push(
      follows
        ? `did not show all its output within ${BLOCK_TIMEOUT_MS} ms${tail}`
        : `did not end within ${BLOCK_TIMEOUT_MS} ms (a block that follows live must be marked <!-- doc-test: follows --> and show its output)${tail}`,
    );
  else if (!r.stopped && r.code !== 0) problems.push(`exited with ${r.code}${tail}`);
  else if (/error/i.test(r.stderr)) problems.push(`wrote an error to stderr${tail}`);
  return problems;
}

/**
 * Runs one block as a reader would and returns what is wrong with it: nothing when it ran and
 * printed what the doc shows.
 */
async function runBlock(block: DocBlock, place: Place): Promise<string[]> {
  const follows = block.marker?.kind === "follows";
  if (block.kind === "shell") {
    const steps = shellSteps(localize(block.code, place), block.lang).map((s) => ({ ...s, shown: s.shown.map((l) => localize(l, place)) }));
    if (follows && steps.every((s) => s.shown.length === 0)) return ["is marked follows but shows no output to wait for"];
    const script = ["set -euo pipefail", ...steps.flatMap((s, n) => [s.command, `${STEP_END_PRINTF} ${n}`])].join("\n");
    const file = path.join(place.scripts, `block-${block.line}.sh`);
    writeFileSync(file, `${script}\n`);
    /** Each step's output, split at the lines printed after each command. */
    const segments = (stdout: string) => stdout.split(STEP_SPLIT);
    // The step running now may be cut mid-line: only its whole lines count.
    const allShown = (stdout: string) => {
      const parts = segments(stdout);
      const current = parts.length - 1;
      return steps.every((s, n) => {
        if (s.shown.length === 0) return true;
        if (n < current) return outputMatches(s.shown, outputLines(parts[n]!));
        if (n > current) return false;
        return outputMatches(s.shown, outputLines(parts[n]!.slice(0, parts[n]!.lastIndexOf("\n") + 1)));
      });
    };
    const r = await run("bash", [file], place, follows ? allShown : undefined);
    const problems = runProblems(r, follows);
    const parts = segments(r.stdout);
    steps.forEach((s, n) => {
      if (s.shown.length === 0) return;
      // A stopped block's last step may have been cut mid-line: its whole lines count.
      const part = r.stopped && n === parts.length - 1 ? parts[n]!.slice(0, parts[n]!.lastIndexOf("\n") + 1) : (parts[n] ?? "");
      const printed = outputLines(part);
      if (!outputMatches(s.shown, printed)) problems.push(`\`${s.command}\` printed\n${show(printed)}\n  where the doc shows\n${show(s.shown)}`);
    });
    return problems;
  }
  const shown = block.shownOutput?.map((l) => localize(l, place));
  if (follows && !shown) return ["is marked follows but no <!-- doc-test: output --> block follows it"];
  const file = path.join(place.scripts, `block-${block.line}.ts`);
  writeFileSync(file, localize(block.code, place));
  const complete = (stdout: string) => outputLines(stdout.slice(0, stdout.lastIndexOf("\n") + 1));
  const r = await run(process.execPath, [file], place, follows ? (stdout) => outputMatches(shown!, complete(stdout)) : undefined);
  const problems = runProblems(r, follows);
  const printed = outputLines(r.stdout);
  if (shown && !outputMatches(shown, printed)) problems.push(`printed\n${show(printed)}\n  where the doc shows\n${show(shown)}`);
  return problems;
}

const runnable = (b: DocBlock) => b.kind !== "other";

for (const doc of DOCS) {
  describe(doc.file, () => {
    const markdown = readFileSync(path.join(ROOT, doc.file), "utf8");
    let blocks: DocBlock[] = [];
    let parseError: unknown;
    try {
      blocks = docBlocks(markdown);
    } catch (error) {
      parseError = error;
    }
    const toRun = blocks.filter((b) => runnable(b) && b.marker?.kind !== "skip");
    let bus: BusProcess | undefined;
    const place = {} as Place;

    beforeAll(async () => {
      if (toRun.length === 0) return;
      bus = await startBus({ auth: true, vars: doc.vars });
      mkdirSync(path.join(ROOT, ".dovetail"), { recursive: true });
      Object.assign(place, { url: bus.url, state: bus.state, token: bus.token!, scripts: mkdtempSync(path.join(ROOT, ".dovetail", "doc-test-")) });
    });
    afterAll(async () => {
      await bus?.stop();
      if (place.scripts) rmSync(place.scripts, { recursive: true, force: true });
    });

    it("marks its blocks in the doc-test convention, and every block names its language", () => {
      expect(parseError).toBeUndefined();
      expect(blocks.filter((b) => b.lang === "").map((b) => `line ${b.line}: a code block with no language`)).toEqual([]);
    });

    for (const block of blocks.filter(runnable)) {
      const name = `line ${block.line} (${block.lang})`;
      if (block.marker?.kind === "skip") {
        it.skip(`${name}: ${block.marker.reason}`, () => {});
        continue;
      }
      it(`${name} runs as written${block.marker?.kind === "follows" ? " until it has shown its output" : ""}`, async () => {
        expect(await runBlock(block, place)).toEqual([]);
      });
    }
  });
}

describe("the doc runner", () => {
  const place = { url: "http://127.0.0.1:1", state: "/nonexistent", token: "t", scripts: "" } as Place;
  beforeAll(() => {
    place.scripts = mkdtempSync(path.join(os.tmpdir(), "dovetail-doc-runner-"));
  });
  afterAll(() => rmSync(place.scripts, { recursive: true, force: true }));
  const only = (markdown: string) => docBlocks(markdown)[0]!;

  it("fails a block whose output is not what the doc shows, and passes it when it is", async () => {
    const wrong = only('```sh\necho \'{"offset":1}\'\n# {"offset":0}\n```\n');
    expect((await runBlock(wrong, place)).join("\n")).toContain('where the doc shows\n    {"offset":0}');
    const right = only('```sh\nprintf \'{"offset":0, "time":5}\'\n# {"offset":0,"time":1}\necho ok\n# …\n```\n');
    expect(await runBlock(right, place)).toEqual([]);
  });

  it("fails a block that exits non-zero or reports an error", async () => {
    expect((await runBlock(only("```sh\nfalse\necho never\n```\n"), place)).join("\n")).toContain("exited with 1");
    expect((await runBlock(only("```ts\nconsole.error('Error: nope');\n```\n"), place)).join("\n")).toContain("wrote an error");
  });

  it("stops a follows block once its output has appeared, and checks a TypeScript block's output block", async () => {
    const follows = only("<!-- doc-test: follows -->\n```sh\necho one\n# one\nsleep 600\n```\n");
    expect(await runBlock(follows, place)).toEqual([]);
    const ts = only("```ts\nconsole.log(1 + 1);\n```\n<!-- doc-test: output -->\n```text\n3\n```\n");
    expect((await runBlock(ts, place)).join("\n")).toContain("where the doc shows\n    3");
  });

  it("refuses unknown markers, a skip without a reason, and an output block with nothing to follow", () => {
    expect(() => docBlocks("<!-- doc-test: ignore -->\n```sh\nls\n```\n")).toThrow(/unknown doc-test marker/);
    expect(() => docBlocks("<!-- doc-test: skip -->\n```sh\nls\n```\n")).toThrow(/unknown doc-test marker/);
    expect(() => docBlocks("text\n<!-- doc-test: output -->\n```text\n1\n```\n")).toThrow(/must follow a runnable block/);
  });
});

/**
 * The local-node rows of both READMEs against bench/results/latest.json (`external.ring`, written
 * by `npm run bench`): each number in the checked cell, in order, is the figure at that path,
 * rounded to the digits shown (and shown with at least two significant digits).
 */
describe("local-node figures", () => {
  const RESULTS = "bench/results/latest.json";
  const results = JSON.parse(readFileSync(path.join(ROOT, RESULTS), "utf8")) as { external: Record<string, { figures: Record<string, unknown> }> };
  const ring = results.external.ring!.figures;
  const ROWS: { doc: string; row: string; column: number; figures: string[] }[] = [
    { doc: "README.md", row: "local-node ring, batched / one record at a time", column: 1, figures: ["batched.nsPerRecord", "single.nsPerRecord"] },
    { doc: "README.md", row: "local-node blocking wake-up p50", column: 1, figures: ["wakeSync.p50Us"] },
    { doc: "README.md", row: "local-node TCP relay, one client", column: 1, figures: ["tcp.recordsPerSec"] },
    { doc: "local-node/README.md", row: "batched: `publishBatch(32)` + `drain`", column: 2, figures: ["batched.nsPerRecord", "batched.bestNsPerRecord"] },
    {
      doc: "local-node/README.md",
      row: "batched: `publishBatch(32)` + `pollBatch(256)` (record objects)",
      column: 2,
      figures: ["batchedPollBatch.nsPerRecord", "batchedPollBatch.bestNsPerRecord"],
    },
    { doc: "local-node/README.md", row: "one at a time: `publish` + `poll`", column: 2, figures: ["single.nsPerRecord", "single.bestNsPerRecord"] },
    { doc: "local-node/README.md", row: "wake-up, blocking `wait()` p50 / p99", column: 2, figures: ["wakeSync.p50Us", "wakeSync.p99Us"] },
    { doc: "local-node/README.md", row: "wake-up, `waitAsync()` p50 / p99", column: 2, figures: ["wakeAsync.p50Us", "wakeAsync.p99Us"] },
    { doc: "local-node/README.md", row: "TCP relay, 1 client, batched", column: 2, figures: ["tcp.recordsPerSec"] },
    {
      doc: "local-node/README.md",
      row: "TCP relay p50 / p99 at 100,000 records/s",
      column: 2,
      figures: ["tcp.latencyAt100kP50Us", "tcp.latencyAt100kP99Us"],
    },
    { doc: "local-node/README.md", row: "CPU per record, TCP relay / client", column: 2, figures: ["tcp.relayCpuNsPerRecord", "tcp.clientCpuNsPerRecord"] },
  ];
  /** A figure's unit, from its name, in the unit the number is kept in. */
  const SCALE: Record<string, number> = { ns: 1, µs: 1e3, us: 1e3, ms: 1e6, "": 1, k: 1e3, M: 1e6 };
  const unitOf = (figure: string) => (/[nN]sPerRecord$/.test(figure) ? "ns" : /Us$/.test(figure) ? "µs" : "");
  const figure = (dotted: string) => dotted.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], ring) as number;

  for (const { doc, row, column, figures } of ROWS) {
    it(`${doc}: "${row}" shows ${figures.join(", ")} of ${RESULTS}`, () => {
      const line = readFileSync(path.join(ROOT, doc), "utf8")
        .split("\n")
        .find((l) => l.startsWith("|") && l.split("|")[1]!.trim() === row);
      expect(line, `${doc} has a table row "${row}"`).toBeDefined();
      const cell = line!.split("|")[column + 1]!;
      const shown = [...cell.matchAll(/(\d+(?:\.\d+)?)\s*(ns|µs|us|ms|k|M)?(?![\w.])/g)].map((m) => ({ text: m[0], digits: m[1]!, unit: m[2] ?? "" }));
      expect(
        shown.map((s) => s.text),
        `the numbers in "${cell.trim()}"`,
      ).toHaveLength(figures.length);
      figures.forEach((name, n) => {
        const { digits, unit } = shown[n]!;
        const decimals = digits.split(".")[1]?.length ?? 0;
        const scale = SCALE[unit]! / SCALE[unitOf(name)]!;
        expect(unitOf(name) === "" ? ["", "k", "M"] : ["ns", "µs", "us", "ms"], `the unit of ${shown[n]!.text} for ${name}`).toContain(unit);
        const value = figure(name);
        expect(typeof value, `${name} in ${RESULTS}`).toBe("number");
        expect(digits.replace(/^[0.]+/, "").replace(".", "").length, `${shown[n]!.text} has two significant digits`).toBeGreaterThanOrEqual(2);
        expect(Math.abs(Number(digits) - value / scale), `${shown[n]!.text} is ${name} = ${value}`).toBeLessThanOrEqual(0.5 * 10 ** -decimals + 1e-9);
      });
    });
  }
});
