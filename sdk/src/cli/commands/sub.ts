/** `dovetail sub <topic|pattern>`: print messages as they arrive, until Ctrl-C or `--limit`. */
import { patternProblem } from "../../../../protocol/scopes.ts";
import { fromOption, integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import type { Message } from "../../message.ts";
import { dataText, messageJson } from "../output.ts";

/** Reconnect attempts for a live subscription before giving up with exit 3. */
const SUB_MAX_ATTEMPTS = 10;

export const sub = defineCommand({
  name: "sub",
  args: ["<topic|pattern>"],
  summary: "print messages as they arrive, from a topic or every topic a pattern matches",
  description: `Prints each message's data, one per line (strings as they are, bytes as base64, other values
as JSON). Runs until Ctrl-C (exit 130), or until --limit messages were printed. A pattern
(agents.*.events, agents.>) follows every topic it matches, those created later included; each
line then starts with the topic's name.`,
  json: `one message per line: {"offset","time","key","headers","data"} ("bytes" in base64 for binary), with "topic" first for a pattern`,
  options: {
    from: { type: "string", value: "F", help: "offset, earliest, latest (default), or an ISO date / milliseconds since the epoch" },
    limit: { type: "string", value: "N", help: "exit 0 after N messages" },
  },
  async run({ values, positionals, out }) {
    const name = positionals[0]!;
    const pattern = /[*>]/.test(name);
    if (pattern) {
      const problem = patternProblem(name);
      if (problem) throw new UsageError(`pattern ${JSON.stringify(name)}: ${problem}`);
    } else topicArgument(name);
    const from = values.from === undefined ? "latest" : fromOption(values.from, "--from");
    if (pattern && typeof from === "number") throw new UsageError("--from: a pattern starts at earliest, latest or a time, not an offset");
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    const { bus } = openBus(values, SUB_MAX_ATTEMPTS);
    const subscription: AsyncIterable<Message & { topic?: string }> & { close(): void } = bus.subscribe(name, { from });
    process.once("SIGINT", () => {
      subscription.close();
      void bus.close({ force: true }).then(() => process.exit(EXIT.interrupted));
    });
    let printed = 0;
    try {
      for await (const m of subscription) {
        if (m.topic === undefined) out.print(m, (msg) => dataText(msg.data), messageJson);
        else
          out.print(
            m,
            (msg) => `${msg.topic} ${dataText(msg.data)}`,
            (msg) => ({ topic: msg.topic, ...messageJson(msg) }),
          );
        if (++printed >= limit) break;
      }
      return EXIT.ok;
    } finally {
      await bus.close({ force: true });
    }
  },
});
