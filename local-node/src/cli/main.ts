/**
 * `dovetail-local`'s dispatcher: `--help` for the whole CLI and per command, strict parsing,
 * and every failure as one line on stderr with its exit code: 2 for usage (unknown command or
 * option, bad number, missing argument; the ring's own refusal of a bad name or option too),
 * 1 when a ring, relay, bridge or the edge fails, with its error code.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
import { DovetailError } from "@dovetail/sdk";
import { BridgeError, RelayError, RingError } from "../index.ts";
import { type Command, EXIT, HELP_OPTION, type OptionSpec, parseInvocation, UsageError } from "./command.ts";
import { COMMANDS } from "./registry.ts";

const HELP_WORDS = new Set(["-h", "--help", "help"]);

function columns(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows
    .map(([left, right]) => {
      const [first, ...more] = right.split("\n");
      return [`  ${left.padEnd(width)}  ${first}`, ...more.map((line) => `  ${" ".repeat(width)}  ${line}`)].join("\n");
    })
    .join("\n");
}

const optionRow = (name: string, spec: OptionSpec): [string, string] => [
  `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`,
  spec.help,
];

const synopsis = (c: Command) => [c.name, ...c.args].join(" ");

export function commandHelp(c: Command): string {
  const rows = Object.entries({ ...c.options, ...HELP_OPTION }).map(([name, spec]) => optionRow(name, spec));
  return `Usage: dovetail-local ${synopsis(c)} [options]\n\n${c.description}\n\nOptions:\n${columns(rows)}`;
}

export function mainHelp(): string {
  return [
    "dovetail-local: rings, relays and bridges on this host",
    "",
    "Usage: dovetail-local <command> [options]",
    "",
    "Commands:",
    columns(COMMANDS.map((c) => [synopsis(c), c.summary])),
    "",
    "Run dovetail-local <command> --help for its options.",
    "Exit codes: 0 ok (or stopped by a signal), 1 the ring, relay, bridge or edge failed, 2 usage.",
  ].join("\n");
}

/** The message and exit code for an error: one line, the error's code where it has one. */
export function failure(error: unknown): { message: string; code: number } {
  if (error instanceof UsageError) return { message: error.message, code: EXIT.usage };
  // A bad ring name or option (capacity not a power of two, ...) is bad input too.
  if (error instanceof RingError && error.code === "RING_INVALID") return { message: `${error.code}: ${error.message}`, code: EXIT.usage };
  if (error instanceof RingError || error instanceof BridgeError || error instanceof RelayError || error instanceof DovetailError) {
    return { message: `${error.code}: ${error.message}`, code: EXIT.failed };
  }
  const text = error instanceof Error ? error.message : String(error);
  return { message: text.split("\n")[0] ?? text, code: EXIT.failed };
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return EXIT.ok;
}

function fail(message: string, code: number): number {
  process.stderr.write(`dovetail-local: ${message}\n`);
  return code;
}

/** Run `dovetail-local` with `argv` (the arguments after the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) return fail(`missing command\n\n${mainHelp()}`, EXIT.usage);
  if (HELP_WORDS.has(name)) {
    if (rest[0] === undefined) return print(mainHelp());
    const command = COMMANDS.find((c) => c.name === rest[0]);
    return command ? print(commandHelp(command)) : fail(`no command ${JSON.stringify(rest[0])} (see dovetail-local --help)`, EXIT.usage);
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) return fail(`unknown command ${JSON.stringify(name)} (see dovetail-local --help)`, EXIT.usage);
  const end = rest.indexOf("--");
  if ((end < 0 ? rest : rest.slice(0, end)).some((a) => a === "-h" || a === "--help")) return print(commandHelp(command));
  try {
    const { values, positionals } = parseInvocation(command, rest, () => commandHelp(command));
    return await command.run({ values, positionals });
  } catch (error) {
    const { message, code } = failure(error);
    return fail(message, code);
  }
}
