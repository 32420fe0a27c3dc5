/**
 * How answers are printed: with `--json`, each answer is one JSON document on one line (a
 * one-shot command prints one, a stream one per message); without it, text for people (tables,
 * `name  value` blocks, plain lines). Also the shared text helpers.
 */
import type { Message } from "../index.ts";

/** The part of a stream that `Output` writes to (stdout; tests may pass another). */
export interface TextSink {
  write(text: string): unknown;
}

/**
 * @example
 * const out = new Output(values.json === true);
 * out.print({ offset }, (v) => `stored at offset ${v.offset}`);
 */
export class Output {
  readonly json: boolean;
  readonly #sink: TextSink;

  constructor(json: boolean, sink: TextSink = process.stdout) {
    this.json = json;
    this.#sink = sink;
  }

  /**
   * One answer (or one item of a stream): with `--json` one line of JSON (`value`, or
   * `json(value)` when the JSON form differs), else `text(value)`.
   */
  print<T>(value: T, text: (value: T) => string, json?: (value: T) => unknown): void {
    this.#sink.write(`${this.json ? JSON.stringify(json ? json(value) : value) : text(value)}\n`);
  }

  /** A line of text that has no JSON form (only printed without `--json`). */
  text(line: string): void {
    if (!this.json) this.#sink.write(`${line}\n`);
  }
}

/**
 * Rows as a text table: columns padded to their widest cell, the last one left as it is.
 *
 * @example
 * table([["NAME", "HEAD"], ["t", "3"]]) // "NAME  HEAD\nt     3"
 */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ")).join("\n");
}

/**
 * `name  value` lines, names padded to the widest.
 *
 * @example
 * fields([["head", 3], ["earliest", 0]]) // "head      3\nearliest  0"
 */
export function fields(pairs: [string, string | number][]): string {
  const width = Math.max(...pairs.map(([name]) => name.length));
  return pairs.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join("\n");
}

/** A time in milliseconds as ISO 8601 to the second, `-` for none. */
export const isoTime = (ms: number | null | undefined): string =>
  ms === null || ms === undefined || ms === 0 ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** A message's payload as one line of text: strings as they are, bytes as base64, the rest as JSON. */
export function dataText(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof Uint8Array) return Buffer.from(data).toString("base64");
  return JSON.stringify(data);
}

/** A message as the CLI's JSON shows it: `{offset, time, key?, headers, data | bytes (base64)}`. */
export function messageJson(m: Message): Record<string, unknown> {
  const payload = m.data instanceof Uint8Array ? { bytes: Buffer.from(m.data).toString("base64") } : { data: m.data };
  return { offset: m.offset, time: m.time, ...(m.key !== undefined ? { key: m.key } : {}), headers: m.headers, ...payload };
}
