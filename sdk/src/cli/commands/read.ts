/** `dovetail read <topic>`: one page of messages over HTTP, no waiting for more. */
import type { ReadResult } from "../../index.ts";
import { fromOption, integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { dataText, messageJson, table } from "../output.ts";

/** The HTTP API's page size bounds (docs/protocol.md, "HTTP API": `limit=1..1000`). */
const READ_LIMIT_MAX = 1000;
const READ_LIMIT_DEFAULT = 100;

function pageText(topic: string, page: ReadResult): string {
  const rows = page.messages.map((m) => [String(m.offset), new Date(m.time).toISOString(), m.key ?? "-", dataText(m.data)]);
  const where = `next ${page.next} (head ${page.head}, earliest ${page.earliest})`;
  if (rows.length === 0) return `no messages in ${topic} from there; ${where}`;
  return `${table([["OFFSET", "TIME", "KEY", "DATA"], ...rows])}\n${where}`;
}

export const read = defineCommand({
  name: "read",
  args: ["<topic>"],
  summary: "print one page of messages and the next offset",
  description: `Reads up to --limit messages from --from over HTTP and prints them as a table (offset, time,
key, data), then the offset to read from next. Returns at once: it never waits for new messages
(use dovetail sub for that). Read the following page with --from <next>.`,
  json: `{"messages":[{"offset","time","key","headers","data"}...],"next","head","earliest"}`,
  options: {
    from: { type: "string", value: "F", help: "offset, earliest (default), latest, or an ISO date / milliseconds since the epoch" },
    limit: { type: "string", value: "N", help: `at most N messages, 1 to ${READ_LIMIT_MAX} (default ${READ_LIMIT_DEFAULT})` },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const from = values.from === undefined ? "earliest" : fromOption(values.from, "--from");
    const limit = values.limit === undefined ? READ_LIMIT_DEFAULT : integerOption(values.limit, "--limit", { min: 1, max: READ_LIMIT_MAX });
    return withBus(values, 1, async (bus) => {
      const page = await bus.read(topic, { from, limit });
      out.print(
        page,
        (p) => pageText(topic, p),
        (p) => ({ messages: p.messages.map(messageJson), next: p.next, head: p.head, earliest: p.earliest }),
      );
      return EXIT.ok;
    });
  },
});
