/**
 * `--help` texts, generated from the registry and each command's options, so a flag and its help
 * line cannot drift apart.
 */
import { COMMON_OPTIONS, type Command, type OptionSpec } from "./command.ts";
import { COMMANDS, GROUP_DESCRIPTIONS } from "./registry.ts";

const EXIT_CODES = "Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 cannot connect, 4 auth refused, 130 interrupted.";

/** `pub <topic> [json|-]`: a command's name and arguments. */
const synopsis = (c: Command) => [c.name, ...c.args].join(" ");

/** Two columns, the left padded to its widest; continuation lines of the right one indented. */
function columns(rows: [string, string][], indent = "  "): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows
    .map(([left, right]) => {
      const [first, ...more] = right.split("\n");
      return [`${indent}${left.padEnd(width)}  ${first}`, ...more.map((line) => `${indent}${" ".repeat(width)}  ${line}`)].join("\n");
    })
    .join("\n");
}

function optionRow(name: string, spec: OptionSpec): [string, string] {
  const flag = `${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.type === "string" ? ` ${spec.value ?? "VALUE"}` : ""}`;
  return [flag, spec.help];
}

/** The words of every group: `topics`, `keys`, ... in registry order. */
export function groups(): string[] {
  return [...new Set(COMMANDS.filter((c) => c.name.includes(" ")).map((c) => c.name.split(" ")[0]!))];
}

/** The commands of a group (`keys` → keys create, keys list, keys revoke). */
export function groupCommands(group: string): Command[] {
  return COMMANDS.filter((c) => c.name.startsWith(`${group} `));
}

export function commandHelp(c: Command): string {
  const { json, ...common } = COMMON_OPTIONS;
  const rows = [
    ...Object.entries(c.options).map(([name, spec]) => optionRow(name, spec)),
    optionRow("json", { ...json, help: c.json ? `print JSON: ${c.json}` : json.help }),
    ...Object.entries(common).map(([name, spec]) => optionRow(name, spec)),
  ];
  return `Usage: dovetail ${synopsis(c)} [options]\n\n${c.description}\n\nOptions:\n${columns(rows)}`;
}

export function groupHelp(group: string): string {
  const commands = groupCommands(group);
  const words = commands.map((c) => c.name.slice(group.length + 1)).join("|");
  const description = GROUP_DESCRIPTIONS[group];
  return [
    `Usage: dovetail ${group} <${words}> [options]`,
    ...(description ? ["", description] : []),
    "",
    "Commands:",
    columns(commands.map((c) => [synopsis(c), c.summary])),
    "",
    `Run dovetail ${group} <command> --help for its options.`,
  ].join("\n");
}

export function mainHelp(): string {
  return [
    "dovetail: command line for the Dovetail agent message bus",
    "",
    "Usage: dovetail <command> [options]",
    "",
    "Commands:",
    columns(COMMANDS.map((c) => [synopsis(c), c.summary])),
    "",
    "Options of every command:",
    columns(Object.entries(COMMON_OPTIONS).map(([name, spec]) => optionRow(name, spec))),
    "",
    "Also: dovetail --version. Run dovetail <command> --help for a command's options.",
    "",
    EXIT_CODES,
  ].join("\n");
}
