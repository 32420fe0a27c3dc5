/** `dovetail topics rm <topic>`: delete a topic and its messages. */
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";

export const topicsRm = defineCommand({
  name: "topics rm",
  args: ["<topic>"],
  summary: "delete a topic and its messages (needs admin on it)",
  description: `Deletes the topic (needs admin on it). Its sockets are closed with code 4004 after a
"topic_deleted" error; a later publish creates a fresh topic from offset 0. A topic that does not
exist exits 1 (not_found).`,
  json: `{"topic","deleted":true,"closedSockets":N}`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    return withBus(values, 1, async (bus) => {
      out.print(await bus.deleteTopic(topic), (r) => `deleted ${r.topic}; closed ${r.closedSockets} socket${r.closedSockets === 1 ? "" : "s"}`);
      return EXIT.ok;
    });
  },
});
