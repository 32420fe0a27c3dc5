/**
 * What a `dovetail-local` command is, and the parsing every command shares: `util.parseArgs`
 * (strict), positionals counted against the command's arguments, and number parsers that throw
 * a one-line `UsageError` (exit 2) naming the flag and the value, so no `NaN` reaches a ring.
 * A command is one module under `commands/`, listed once in `registry.ts`.
 *
 * @example
 * export const unlink = defineCommand({
 *   name: "unlink", args: ["<ring>"], summary: "remove a ring", description: "…", options: {},
 *   async run({ positionals }) { Ring.unlink(positionals[0]!); return EXIT.ok; },
 * });
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Exit codes: 0 ok (or stopped by a signal), 1 the ring, relay, bridge or edge failed, 2 usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Bad input, found before any ring or socket was touched: exit 2, one line. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** Placeholder shown after a string option in `--help`. */
  value?: string;
  help: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

export type Values<O extends OptionSpecs> = { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string } & { help?: boolean };

export interface Command<O extends OptionSpecs = OptionSpecs> {
  name: string;
  /** `"<ring>"` required, `"[x]"` optional. */
  args: readonly string[];
  summary: string;
  description: string;
  options: O;
  run(call: { values: Values<O>; positionals: string[] }): Promise<number>;
}

export function defineCommand<const O extends OptionSpecs>(command: Command<O>): Command<O> {
  return command;
}

export const HELP_OPTION = { help: { type: "boolean", short: "h", help: "this help" } } as const satisfies OptionSpecs;

/** Parse `args` for `command` strictly; a missing argument also shows the command's usage. */
export function parseInvocation<O extends OptionSpecs>(command: Command<O>, args: string[], usage: () => string): { values: Values<O>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  const specs: OptionSpecs = { ...command.options, ...HELP_OPTION };
  for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs explains over several lines; its first sentence says what is wrong.
    const message = (error as Error).message;
    const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(message);
    const first = ambiguous
      ? `${ambiguous[1]} needs a value (write ${ambiguous[1]}=VALUE for a value that starts with "-")`
      : (message.split(/\.(\s|$)/)[0] ?? "").trim();
    throw new UsageError(`${command.name}: ${first} (see dovetail-local ${command.name} --help)`);
  }
  const { positionals } = parsed;
  const required = command.args.filter((a) => a.startsWith("<"));
  if (positionals.length < required.length) throw new UsageError(`${command.name}: missing ${required[positionals.length]}\n\n${usage()}`);
  if (positionals.length > command.args.length) {
    const extra = positionals.slice(command.args.length).map((p) => JSON.stringify(p));
    throw new UsageError(`${command.name}: takes ${command.args.join(" ")} only, got ${extra.join(" ")} as well (see dovetail-local ${command.name} --help)`);
  }
  return { values: parsed.values as Values<O>, positionals };
}

/**
 * A whole number in `[min, max]`, decimal digits only (no `1e3`, `0x10`, `""`).
 *
 * @example
 * integerOption("7400", "--port", { max: 65535 }) // 7400
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

/** `integerOption` for an option that may be absent. */
export function optionalInteger(value: string | undefined, flag: string, range: { min?: number; max?: number } = {}): number | undefined {
  return value === undefined ? undefined : integerOption(value, flag, range);
}
