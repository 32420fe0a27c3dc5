/** `dovetail topics ls`: the tenant's topics this credential may see, every page. */
import type { TopicEntry } from "../../index.ts";
import { integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { isoTime, table } from "../output.ts";

/** The HTTP API's largest page (docs/protocol.md: `GET /v1/topics`, `limit=1..1000`). */
const TOPICS_PAGE_MAX = 1000;

function topicTable(topics: TopicEntry[]): string {
  if (topics.length === 0) return "no topics";
  return table([
    ["NAME", "HEAD", "MESSAGES", "BYTES", "SUBSCRIBERS", "LAST ACTIVE"],
    ...topics.map((t) => [t.name, String(t.head), String(t.messages), String(t.bytes), String(t.subscribers), isoTime(t.lastActive)]),
  ]);
}

export const topicsLs = defineCommand({
  name: "topics ls",
  args: [],
  summary: "list your tenant's topics (--prefix, --pattern)",
  description: `Prints a table (name, head, messages, bytes, subscribers, last active) of every page. Stats are
as the topics last reported them: at most a few seconds old while a topic is active.`,
  json: "the entries as one JSON array",
  options: {
    prefix: { type: "string", value: "P", help: "names starting with P" },
    pattern: { type: "string", value: "P", help: "names matching P (* one segment, > the rest), e.g. agents.*.inbox" },
    limit: { type: "string", value: "N", help: "stop after N topics" },
  },
  async run({ values, out }) {
    const max = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    return withBus(values, 1, async (bus) => {
      const all: TopicEntry[] = [];
      let cursor: string | undefined;
      do {
        const page = await bus.topics({
          ...(values.prefix ? { prefix: values.prefix } : {}),
          ...(values.pattern ? { pattern: values.pattern } : {}),
          ...(cursor ? { cursor } : {}),
          limit: Math.min(TOPICS_PAGE_MAX, max - all.length),
        });
        all.push(...page.topics);
        cursor = page.cursor ?? undefined;
      } while (cursor !== undefined && all.length < max);
      out.print(all.slice(0, max), topicTable);
      return EXIT.ok;
    });
  },
});
