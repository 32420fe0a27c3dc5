/**
 * What a `dovetail` command is: its words, arguments, options (each with its help line) and a
 * `run` function. A command is one module under `commands/` exporting one `defineCommand(...)`,
 * listed once in `registry.ts`; parsing, `--help`, `--json`, `--url`/`--token` and exit codes
 * come from here and `main.ts`, so a command only does its own work.
 *
 * @example
 * export const ping = defineCommand({
 *   name: "ping",
 *   args: ["<topic>"],
 *   summary: "print a topic's head",
 *   description: "Prints the offset the next message will get.",
 *   options: {},
 *   async run({ positionals, values, out }) {
 *     const { bus } = openBus(values, 1);
 *     try {
 *       const { head } = await bus.info(positionals[0]!);
 *       out.print({ head }, () => `head ${head}`);
 *       return EXIT.ok;
 *     } finally {
 *       await bus.close({ force: true });
 *     }
 *   },
 * });
 */
import type { Output } from "./output.ts";

/** One option: `util.parseArgs`'s type, short and multiple, plus what `--help` shows. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder shown after a string option in `--help`: `N`, `K`, `name=value`. */
  value?: string;
  /** Its help text; several lines allowed. */
  help: string;
}

export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean"
  ? S["multiple"] extends true
    ? boolean[]
    : boolean
  : S["multiple"] extends true
    ? string[]
    : string;

/** Options every command takes (see COMMON_OPTIONS). */
export interface CommonValues {
  url?: string;
  token?: string;
  json?: boolean;
  help?: boolean;
}

/** Parsed option values: each absent unless given. */
export type Values<O extends OptionSpecs> = { [K in keyof O]?: ValueOf<O[K]> } & CommonValues;

export interface Invocation<O extends OptionSpecs> {
  values: Values<O>;
  /** The positional arguments, counted against `args` already (required ones are present). */
  positionals: string[];
  /** Where the answer goes: JSON with `--json`, text otherwise. */
  out: Output;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  /** The words that select it: `"pub"`, `"topics ls"`, `"groups reset"`. */
  name: string;
  /**
   * Positional arguments, for the usage line and counting: `"<topic>"` required, `"[json|-]"`
   * optional, a trailing `"..."` (e.g. `"[id...]"`) takes any number.
   */
  args: readonly string[];
  /** One line for `dovetail --help`. */
  summary: string;
  /** The paragraph of `dovetail <name> --help`. */
  description: string;
  /** What `--json` prints (default: the answer as one JSON document). */
  json?: string;
  options: O;
  run(call: Invocation<O>): Promise<number>;
}

/** Identity, to infer the option types of `run`'s `values` from `options`. */
export function defineCommand<const O extends OptionSpecs>(command: Command<O>): Command<O> {
  return command;
}

export const DEFAULT_URL = "http://127.0.0.1:8787";

/** `--url`, `--token`, `--json` and `--help`: taken by every command. */
export const COMMON_OPTIONS = {
  json: { type: "boolean", help: "print JSON: one document, or one per line for a stream" },
  url: { type: "string", value: "URL", help: `bus URL (env DOVETAIL_URL, default ${DEFAULT_URL})` },
  token: { type: "string", value: "TOKEN", help: "API key or JWT (env DOVETAIL_TOKEN)" },
  help: { type: "boolean", short: "h", help: "this help" },
} as const satisfies OptionSpecs;
