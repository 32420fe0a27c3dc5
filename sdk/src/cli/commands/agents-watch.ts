/** `dovetail agents watch`: print the registry's lifecycle events as they happen, until Ctrl-C or `--limit`. */
import type { AgentEvent } from "../../index.ts";
import { fromOption, integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { isoTime } from "../output.ts";

/** Reconnect attempts for a live watch before giving up with exit 3. */
const WATCH_MAX_ATTEMPTS = 10;

function eventLine(e: AgentEvent): string {
  const what = e.kind === "registered" && e.takeover ? "registered (took over)" : e.kind;
  const caps = e.agent.capabilities.length > 0 ? ` [${e.agent.capabilities.join(",")}]` : "";
  return `${isoTime(e.at)}  ${what.padEnd(10)}  ${e.agent.id}${caps}${e.reason ? `: ${e.reason}` : ""}`;
}

export const agentsWatch = defineCommand({
  name: "agents watch",
  args: [],
  summary: "print agents' lifecycle events as they happen",
  description: `Prints one line per event (time, registered/updated/left/crashed, agent id, capabilities, and
why for left and crashed) from the system topic _agents.events. Runs until Ctrl-C (exit 130), or
until --limit events were printed. --from earliest replays the events still stored.`,
  json: `one event per line: {"kind","agent":{...},"at","takeover"?,"reason"?}`,
  options: {
    from: { type: "string", value: "F", help: "offset, earliest, latest (default), or an ISO date / milliseconds since the epoch" },
    limit: { type: "string", value: "N", help: "exit 0 after N events" },
  },
  async run({ values, out }) {
    const from = values.from === undefined ? "latest" : fromOption(values.from, "--from");
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    const { bus } = openBus(values, WATCH_MAX_ATTEMPTS);
    const controller = new AbortController();
    process.once("SIGINT", () => {
      controller.abort();
      void bus.close({ force: true }).then(() => process.exit(EXIT.interrupted));
    });
    let printed = 0;
    try {
      for await (const e of bus.agents.watch({ from, signal: controller.signal })) {
        out.print(e, eventLine);
        if (++printed >= limit) break;
      }
      return EXIT.ok;
    } finally {
      await bus.close({ force: true });
    }
  },
});
