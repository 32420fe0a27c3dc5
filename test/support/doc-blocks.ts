/**
 * The code blocks of a markdown file, as `test/node/docs.test.ts` runs them: which blocks run,
 * how each is marked, what output the doc shows for it, and whether real output matches that.
 * The convention itself is described at the top of docs.test.ts.
 *
 * @example
 * for (const block of docBlocks(readFileSync("README.md", "utf8"))) {
 *   if (block.kind === "shell") for (const step of shellSteps(block.code)) console.log(step.command, step.shown);
 * }
 * outputMatches(['{"offset":0,"count":1}', "…"], outputLines(stdout)); // true when stdout starts with that answer
 */

/** Info-string languages that run as shell (bash) and as TypeScript (a Node script). */
export const SHELL_LANGS = new Set(["sh", "bash", "shell", "console"]);
export const TS_LANGS = new Set(["ts", "typescript"]);

export type Marker = { kind: "skip"; reason: string } | { kind: "follows" } | { kind: "output" };

export interface DocBlock {
  /** 1-based line of the opening fence. */
  line: number;
  /** First word of the info string ("" when the fence names no language). */
  lang: string;
  kind: "shell" | "ts" | "other";
  code: string;
  /** The `<!-- doc-test: … -->` comment on the nearest non-blank line above the fence. */
  marker: Marker | undefined;
  /** For a runnable block: the lines of the `output` block that follows it. */
  shownOutput: string[] | undefined;
}

const MARKER = /^<!--\s*doc-test:\s*(.*?)\s*-->$/;
const FENCE_OPEN = /^( *)(`{3,}|~{3,})\s*(.*)$/;

function parseMarker(text: string, line: number): Marker {
  if (text === "follows") return { kind: "follows" };
  if (text === "output") return { kind: "output" };
  const skip = /^skip:\s*(\S.*)$/.exec(text);
  if (skip) return { kind: "skip", reason: skip[1]! };
  throw new Error(`line ${line}: unknown doc-test marker ${JSON.stringify(text)} (expected "skip: <reason>", "follows" or "output")`);
}

/**
 * Every fenced block of `markdown`, in order, with its marker; an `output` block is attached to
 * the runnable block before it. Throws on a misplaced or unknown marker.
 */
export function docBlocks(markdown: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE_OPEN.exec(lines[i]!);
    if (!open) continue;
    const fence = open[2]!;
    const lang = (open[3] ?? "").split(/\s+/)[0]!.toLowerCase();
    const indent = open[1]!.length;
    const closes = (l: string) => {
      const t = l.trim();
      return t.length >= fence.length && t === fence[0]!.repeat(t.length);
    };
    let end = i + 1;
    while (end < lines.length && !closes(lines[end]!)) end++;
    if (end >= lines.length) throw new Error(`line ${i + 1}: code block never closed`);
    let above = i - 1;
    while (above >= 0 && lines[above]!.trim() === "") above--;
    const markerText = above >= 0 ? MARKER.exec(lines[above]!.trim())?.[1] : undefined;
    const marker = markerText === undefined ? undefined : parseMarker(markerText, above + 1);
    const kind = SHELL_LANGS.has(lang) ? "shell" : TS_LANGS.has(lang) ? "ts" : "other";
    const block: DocBlock = {
      line: i + 1,
      lang,
      kind,
      code: lines
        .slice(i + 1, end)
        .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
        .join("\n"),
      marker,
      shownOutput: undefined,
    };
    if (marker?.kind === "output") {
      const owner = blocks.at(-1);
      if (kind !== "other") throw new Error(`line ${i + 1}: an output block must not be ${lang} (it would look runnable); use text`);
      if (!owner || owner.kind === "other" || owner.marker?.kind === "skip" || owner.shownOutput)
        throw new Error(`line ${i + 1}: an output block must follow a runnable block that shows no other output`);
      owner.shownOutput = block.code.split("\n");
    } else if (marker && kind === "other") {
      throw new Error(`line ${i + 1}: "${markerText}" marks a ${lang || "plain"} block, which never runs`);
    }
    blocks.push(block);
    i = end;
  }
  return blocks;
}

/** One command of a shell block (continued lines included) and the output shown under it. */
export interface ShellStep {
  command: string;
  /** The `# ` lines right under the command, without the `# `; empty when none are shown. */
  shown: string[];
}

/**
 * A shell block as commands: a line ending in `\` continues on the next; the `# ` lines right
 * under a command are its output; `#` lines before the first command are comments. In a
 * `console` block, `$ ` lines are commands and the lines under them their output.
 */
export function shellSteps(code: string, lang = "sh"): ShellStep[] {
  const steps: ShellStep[] = [];
  let continuing = false;
  for (const raw of code.split("\n")) {
    const line = raw.trimEnd();
    const last = steps.at(-1);
    if (continuing && last) {
      last.command += `\n${line}`;
      continuing = line.endsWith("\\");
      continue;
    }
    if (lang === "console") {
      if (line.startsWith("$ ")) steps.push({ command: line.slice(2), shown: [] });
      else if (last) last.shown.push(line);
      else if (line !== "") throw new Error(`console block: output ${JSON.stringify(line)} before any "$ " command`);
      continuing = line.startsWith("$ ") && line.endsWith("\\");
      continue;
    }
    if (line === "") continue;
    if (line === "#" || line.startsWith("# ")) {
      last?.shown.push(line.slice(2));
      continue;
    }
    steps.push({ command: line, shown: [] });
    continuing = line.endsWith("\\");
  }
  return steps;
}

/** JSON answers compare as values, with every `"time"` (a server timestamp) taken as equal. */
function asJson(line: string): unknown {
  if (!/^[[{]/.test(line)) return undefined;
  try {
    return JSON.parse(line.replace(/"time":\d+/g, '"time":0'));
  } catch {
    return undefined;
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** One shown line against one real line: `…` inside a line stands for any characters. */
export function lineMatches(shown: string, actual: string): boolean {
  if (shown.includes("…")) {
    const pattern = shown
      .split("…")
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*");
    return new RegExp(`^${pattern}$`).test(actual);
  }
  const [a, b] = [asJson(shown), asJson(actual)];
  if (a !== undefined && b !== undefined) return sameValue(a, b);
  return shown === actual;
}

/**
 * Whether real output lines are what the doc shows: line by line, where a line that is only
 * `…` stands for any number of lines.
 */
export function outputMatches(shown: string[], actual: string[], i = 0, j = 0): boolean {
  if (i === shown.length) return j === actual.length;
  if (shown[i] === "…") {
    for (let k = j; k <= actual.length; k++) if (outputMatches(shown, actual, i + 1, k)) return true;
    return false;
  }
  return j < actual.length && lineMatches(shown[i]!, actual[j]!) && outputMatches(shown, actual, i + 1, j + 1);
}

/** Output text as lines to compare: no `\r`, no blank lines at either end. */
export function outputLines(text: string): string[] {
  const lines = text.replaceAll("\r", "").split("\n");
  while (lines.length > 0 && lines[0]!.trim() === "") lines.shift();
  while (lines.length > 0 && lines.at(-1)!.trim() === "") lines.pop();
  return lines;
}
