/** `dovetail info <topic>`: a topic's head, earliest offset, size, subscribers and retention. */
import type { TopicInfo } from "../../index.ts";
import { durationText, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { fields, isoTime } from "../output.ts";

/** A retention setting in words: `max age 1h, max messages 1000, max bytes none`. */
export function retentionText(r: TopicInfo["retention"]): string {
  const limit = (n: number, text: (n: number) => string) => (n === 0 ? "none" : text(n));
  return `max age ${limit(r.maxAgeMs, durationText)}, max messages ${limit(r.maxMessages, String)}, max bytes ${limit(r.maxBytes, String)}`;
}

/** A topic's facts as `name  value` lines. */
export function infoText(i: TopicInfo): string {
  return fields([
    ["topic", i.topic],
    ["head", i.head],
    ["earliest", i.earliest],
    ["messages", i.messages],
    ["bytes", i.bytes],
    ["subscribers", i.subscribers],
    ["last write", isoTime(i.lastTime)],
    ["retention", retentionText(i.retention)],
    ["durability", i.durability ?? "sync"],
  ]);
}

export const info = defineCommand({
  name: "info",
  args: ["<topic>"],
  summary: "print a topic's head, earliest offset, size, subscribers, retention and durability",
  description: `Prints the topic's facts: head (the next offset), earliest (the first offset still stored),
messages, bytes, subscribers, the time of the last write, the retention setting and the
durability level. A topic nobody wrote to shows head 0.`,
  json: `{"topic","head","earliest","messages","bytes","lastTime","subscribers","retention":{"maxAgeMs","maxMessages","maxBytes"},"durability"}`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    return withBus(values, 1, async (bus) => {
      out.print(await bus.info(topic), infoText);
      return EXIT.ok;
    });
  },
});
