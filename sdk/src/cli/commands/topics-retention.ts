/**
 * `dovetail topics retention <topic>`: show or set how much a topic keeps. Uses the HTTP route
 * `PATCH /v1/topics/{topic}` (docs/protocol.md, "HTTP API") through the SDK's HTTP helper: the
 * route replaces the whole setting (an absent limit means none), so this reads the current
 * setting first and changes only the limits given.
 */
import type { TopicInfo } from "../../index.ts";
import { requestJson } from "../../http.ts";
import { durationOption, integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { infoText } from "./info.ts";

/** A count or size limit: a non-negative integer, `none` meaning 0 (no limit). */
function limitOption(value: string, flag: string): number {
  return value === "none" ? 0 : integerOption(value, flag);
}

export const topicsRetention = defineCommand({
  name: "topics retention",
  args: ["<topic>"],
  summary: "show or set a topic's retention (--max-messages, --max-bytes, --max-age)",
  description: `Without options, prints the topic's info with its retention. With options, sets those limits
(keeping the others as they are; 0 or none removes a limit), applies them at once (older messages
beyond a limit are deleted before it answers) and prints the topic's info after. Needs admin on
the topic. Setting retention creates the topic if nobody wrote to it yet.`,
  json: `the topic's info, as dovetail info --json prints it`,
  options: {
    "max-messages": { type: "string", value: "N", help: "keep at most the newest N messages" },
    "max-bytes": { type: "string", value: "N", help: "keep at most N bytes of payload" },
    "max-age": { type: "string", value: "D", help: "delete messages older than D: 90s, 15m, 1h, 30d" },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const changes: Partial<TopicInfo["retention"]> = {};
    if (values["max-messages"] !== undefined) changes.maxMessages = limitOption(values["max-messages"], "--max-messages");
    if (values["max-bytes"] !== undefined) changes.maxBytes = limitOption(values["max-bytes"], "--max-bytes");
    if (values["max-age"] !== undefined) changes.maxAgeMs = durationOption(values["max-age"], "--max-age", { allowZero: true });
    return withBus(values, 1, async (bus, c) => {
      const current = await bus.info(topic);
      let result = current;
      if (Object.keys(changes).length > 0) {
        const retention = { ...current.retention, ...changes };
        result = (await requestJson(c, c.httpBase, "PATCH", `/v1/topics/${encodeURIComponent(topic)}`, { retention })) as TopicInfo;
      }
      out.print(result, infoText);
      return EXIT.ok;
    });
  },
});
