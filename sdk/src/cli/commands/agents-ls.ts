/** `dovetail agents ls`: the agents of your tenant (present ones by default), every page. */
import type { AgentInfo, AgentQuery } from "../../index.ts";
import { capabilityProblem, MAX_AGENT_LIST_LIMIT, META_FIELD } from "../../../../protocol/agents.ts";
import { integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { isoTime, table } from "../output.ts";

function agentTable(agents: AgentInfo[]): string {
  if (agents.length === 0) return "no agents";
  return table([
    ["ID", "NAME", "PRESENT", "VIA", "SEEN", "CAPABILITIES"],
    ...agents.map((a) => [a.id, a.name, a.present ? "yes" : "no", a.via, isoTime(a.seenAt), a.capabilities.join(",")]),
  ]);
}

/** `--meta field=value` pairs, checked offline. */
export function metaFilters(pairs: readonly string[]): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const field = pair.slice(0, eq);
    if (eq <= 0 || !META_FIELD.test(field)) throw new UsageError(`--meta: expected field=value (field of A-Z a-z 0-9 _ -), got ${JSON.stringify(pair)}`);
    meta[field] = pair.slice(eq + 1);
  }
  return meta;
}

export const agentsLs = defineCommand({
  name: "agents ls",
  args: [],
  summary: "list the agents in the registry (--capability, --meta, --all)",
  description: `Prints a table (id, name, present, via, when presence last changed, capabilities) of the agents
that are present now, or with --all of every registered one. --capability and --meta narrow the
list; a capability no registered agent declares is an error (exit 1), not an empty list.`,
  json: "the agents as one JSON array",
  options: {
    capability: { type: "string", value: "C", help: "agents that declare capability C" },
    meta: { type: "string", value: "F=V", multiple: true, help: "agents whose metadata field F is V (repeatable)" },
    all: { type: "boolean", help: "absent agents too" },
    absent: { type: "boolean", help: "only agents that are not present" },
    limit: { type: "string", value: "N", help: "stop after N agents" },
  },
  async run({ values, out }) {
    if (values.capability !== undefined) {
      const problem = capabilityProblem(values.capability);
      if (problem) throw new UsageError(`--capability: ${problem}`);
    }
    if (values.all && values.absent) throw new UsageError("--all and --absent: give one of them");
    const meta = metaFilters(values.meta ?? []);
    const max = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    return withBus(values, 1, async (bus) => {
      const all: AgentInfo[] = [];
      let cursor: string | undefined;
      do {
        const query: AgentQuery = {
          present: values.all ? "any" : !values.absent,
          limit: Math.min(MAX_AGENT_LIST_LIMIT, max - all.length),
          ...(values.capability !== undefined ? { capability: values.capability } : {}),
          ...(Object.keys(meta).length > 0 ? { meta } : {}),
          ...(cursor ? { cursor } : {}),
        };
        const page = await bus.agents.list(query);
        all.push(...page.agents);
        cursor = page.cursor ?? undefined;
      } while (cursor !== undefined && all.length < max);
      out.print(all.slice(0, max), agentTable);
      return EXIT.ok;
    });
  },
});
