/**
 * `dovetail`'s dispatcher: finds the command for the leading words (`topics ls`), answers
 * `--help` and `--version`, parses the rest with the command's options, runs it, and turns any
 * error into one line on stderr and its exit code (errors.ts). The commands are in registry.ts.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
import { parseInvocation, wantsHelp } from "./args.ts";
import type { Command, CommonValues } from "./command.ts";
import { busUrl } from "./connection.ts";
import { describe, EXIT, exitCodeFor } from "./errors.ts";
import { commandHelp, groupHelp, groups, mainHelp } from "./help.ts";
import { Output } from "./output.ts";
import { COMMANDS } from "./registry.ts";
import { version } from "./version.ts";

const HELP_WORDS = new Set(["-h", "--help", "help"]);

/** The command whose name is the longest run of leading words of `argv`, and the words after it. */
export function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    const words = c.name.split(" ");
    if (words.every((w, i) => argv[i] === w) && words.length > (best?.name.split(" ").length ?? 0)) best = c;
  }
  return best && { command: best, rest: argv.slice(best.name.split(" ").length) };
}

/** The help text for `words` (`[]`, `["keys"]`, `["keys", "revoke"]`), or undefined for none. */
function helpFor(words: readonly string[]): string | undefined {
  if (words.length === 0) return mainHelp();
  const found = findCommand(words);
  if (found && found.rest.length === 0) return commandHelp(found.command);
  if (words.length === 1 && groups().includes(words[0]!)) return groupHelp(words[0]!);
  return undefined;
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return EXIT.ok;
}

async function runCommand(command: Command, args: string[]): Promise<number> {
  if (wantsHelp(args)) return print(commandHelp(command));
  let values: CommonValues = {};
  try {
    const parsed = parseInvocation(command, args, () => commandHelp(command));
    values = parsed.values;
    return await command.run({ values: parsed.values, positionals: parsed.positionals, out: new Output(values.json === true) });
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, busUrl(values))}\n`);
    return exitCodeFor(error);
  }
}

function usage(message: string): number {
  process.stderr.write(`dovetail: ${message}\n`);
  return EXIT.usage;
}

/** Run `dovetail` with `argv` (the arguments after the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === "--version" || first === "-v" || first === "version") return print(version());
  if (first === undefined || HELP_WORDS.has(first)) {
    const text = helpFor(rest);
    return text === undefined ? usage(`no command ${JSON.stringify(rest.join(" "))} (see dovetail --help)`) : print(text);
  }
  const found = findCommand(argv);
  if (found) return runCommand(found.command, found.rest);
  if (groups().includes(first)) {
    const [word] = rest;
    if (word === undefined) return usage(`${first}: missing command\n\n${groupHelp(first)}`);
    if (HELP_WORDS.has(word)) return print(groupHelp(first));
    return usage(`${first}: unknown command ${JSON.stringify(word)} (see dovetail ${first} --help)`);
  }
  return usage(`unknown command ${JSON.stringify(first)} (see dovetail --help)`);
}
