/**
 * Command-line parsing on `util.parseArgs`, and the value parsers every command shares. Each
 * one throws a one-line `UsageError` (exit 2) naming the flag and the value it got, so nothing
 * malformed (no `NaN`, no negative limit) ever reaches the bus.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { topicNameProblem } from "../index.ts";
import { COMMON_OPTIONS, type Command, type OptionSpecs, type Values } from "./command.ts";
import { UsageError } from "./errors.ts";

/** True when `args` ask for help (`-h`/`--help` before a `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "-h" || a === "--help");
}

/**
 * Parse `args` for `command`: its options and the common ones, strictly; positionals counted
 * against `command.args`.
 *
 * @example
 * const { values, positionals } = parseInvocation(pub, ["t", "1", "--key", "k"]);
 */
export function parseInvocation<O extends OptionSpecs>(command: Command<O>, args: string[], usage: () => string): { values: Values<O>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  const specs: OptionSpecs = { ...COMMON_OPTIONS, ...command.options };
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs explains at length, over several lines; its first sentence says what is wrong.
    const message = (error as Error).message;
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
    const first = ambiguous
      ? `${ambiguous[1]} needs a value (write ${ambiguous[1]}=VALUE for a value that starts with "-")`
      : (message.split(/\.(\s|$)/)[0] ?? "").trim();
    throw new UsageError(`${command.name}: ${first} (see dovetail ${command.name} --help)`);
  }
  const positionals = parsed.positionals;
  const required = command.args.filter((a) => a.startsWith("<"));
  const variadic = command.args.some((a) => a.endsWith("...") || a.endsWith("...]"));
  const missing = required[positionals.length];
  if (missing !== undefined && positionals.length < required.length) throw new UsageError(`${command.name}: missing ${missing}\n\n${usage()}`);
  if (!variadic && positionals.length > command.args.length) {
    const extra = positionals.slice(command.args.length).map((p) => JSON.stringify(p));
    const expected =
      command.args.length === 0 ? "takes no arguments" : `takes ${command.args.length === 1 ? `one ${command.args[0]}` : command.args.join(" ")} only`;
    throw new UsageError(`${command.name}: ${expected}, got ${extra.join(" ")} as well (see dovetail ${command.name} --help)`);
  }
  return { values: parsed.values as Values<O>, positionals };
}

/**
 * A whole number in `[min, max]`, written in decimal digits only (no `1e3`, `0x10`, `""`).
 *
 * @example
 * integerOption("500", "--limit", { min: 1, max: 1000 }) // 500
 */
export function integerOption(value: string, flag: string, range: { min?: number; max?: number } = {}): number {
  const min = range.min ?? 0;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const what =
      max === Number.MAX_SAFE_INTEGER
        ? min === 0
          ? "a non-negative integer"
          : min === 1
            ? "a positive integer"
            : `an integer >= ${min}`
        : `an integer from ${min} to ${max}`;
    throw new UsageError(`${flag}: expected ${what}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Where to start reading: an offset, `earliest`, `latest`, or a time (ISO date or epoch milliseconds). */
export type FromOption = number | "earliest" | "latest" | Date;

/**
 * @example
 * fromOption("earliest", "--from") // "earliest"
 * fromOption("2024-01-01T00:00:00Z", "--from") // Date
 */
export function fromOption(value: string, flag: string): FromOption {
  if (value === "latest" || value === "earliest") return value;
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new UsageError(`${flag}: offset ${value} is too large`);
    // Twelve digits and more read as a time in milliseconds; offsets that large do not happen.
    return value.length >= 12 ? new Date(n) : n;
  }
  const t = /^\d{4}-\d\d/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(t)) throw new UsageError(`${flag}: expected an offset, earliest, latest or an ISO date, got ${JSON.stringify(value)}`);
  return new Date(t);
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration such as `500ms`, `90s`, `15m`, `12h`, `30d`, in milliseconds; `allowZero` also
 * takes `0` and `none`.
 *
 * @example
 * durationOption("1h", "--max-age") // 3_600_000
 */
export function durationOption(value: string, flag: string, options: { allowZero?: boolean } = {}): number {
  if (options.allowZero && (value === "0" || value === "none")) return 0;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  const ms = m ? Number(m[1]) * DURATION_UNIT_MS[m[2]!]! : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new UsageError(
      `${flag}: expected a duration such as 90s, 15m, 12h or 30d${options.allowZero ? " (0 or none: no limit)" : ""}, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/**
 * Milliseconds as the largest unit that divides them: `3600000` → `"1h"`.
 *
 * @example
 * durationText(90_000) // "90s"
 */
export function durationText(ms: number): string {
  for (const unit of ["d", "h", "m", "s"]) if (ms % DURATION_UNIT_MS[unit]! === 0) return `${ms / DURATION_UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

/**
 * A point in time: an ISO date or milliseconds since the epoch.
 *
 * @example
 * timeOption("2030-01-01", "--expires-at") // 1893456000000
 */
export function timeOption(value: string, flag: string): number {
  const t = /^\d+$/.test(value) ? Number(value) : /^\d{4}-\d\d/.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isSafeInteger(t)) throw new UsageError(`${flag}: expected an ISO date or milliseconds since the epoch, got ${JSON.stringify(value)}`);
  return t;
}

/**
 * A topic name argument, checked offline (protocol/topic-name.ts) so a bad name is a usage error.
 *
 * @example
 * topicArgument("agents.events") // "agents.events"
 */
export function topicArgument(value: string): string {
  const problem = topicNameProblem(value);
  if (problem) throw new UsageError(`topic ${JSON.stringify(value)}: ${problem}`);
  return value;
}
