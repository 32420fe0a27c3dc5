/** `dovetail sub <topic>`: print messages as they arrive, until Ctrl-C or `--limit`. */
import { fromOption, integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { dataText, messageJson } from "../output.ts";

/** Reconnect attempts for a live subscription before giving up with exit 3. */
const SUB_MAX_ATTEMPTS = 10;

export const sub = defineCommand({
  name: "sub",
  args: ["<topic>"],
  summary: "print messages as they arrive",
  description: `Prints each message's data, one per line (strings as they are, bytes as base64, other values
as JSON). Runs until Ctrl-C (exit 130), or until --limit messages were printed.`,
  json: `one message per line: {"offset","time","key","headers","data"} ("bytes" in base64 for binary)`,
  options: {
    from: { type: "string", value: "F", help: "offset, earliest, latest (default), or an ISO date / milliseconds since the epoch" },
    limit: { type: "string", value: "N", help: "exit 0 after N messages" },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const from = values.from === undefined ? "latest" : fromOption(values.from, "--from");
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    const { bus } = openBus(values, SUB_MAX_ATTEMPTS);
    const subscription = bus.subscribe(topic, { from });
    process.once("SIGINT", () => {
      subscription.close();
      void bus.close({ force: true }).then(() => process.exit(EXIT.interrupted));
    });
    let printed = 0;
    try {
      for await (const m of subscription) {
        out.print(m, (msg) => dataText(msg.data), messageJson);
        if (++printed >= limit) break;
      }
      return EXIT.ok;
    } finally {
      await bus.close({ force: true });
    }
  },
});
