/**
 * `dovetail topics durability <topic> [sync|async|memory]`: show or set when a topic's
 * subscribers see a message and what its ack promises (docs/durability.md), with
 * `bus.configure` (`PATCH /v1/topics/{topic}`).
 */
import { DURABILITY_LEVELS, isDurability } from "../../../../protocol/durability.ts";
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { infoText } from "./info.ts";

export const topicsDurability = defineCommand({
  name: "topics durability",
  args: ["<topic>", "[level]"],
  summary: "show or set a topic's durability: sync (default), async or memory",
  description: `Without a level, prints the topic's info with its durability. With one, sets it and prints the
info after: sync acks and delivers after the commit; async delivers before the commit and acks
after it (a crash may lose messages subscribers saw but no publisher was acked for); memory
stores nothing, delivers and acks at once (only before the topic's first message). Needs admin
on the topic.`,
  json: `the topic's info, as dovetail info --json prints it`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const level = positionals[1];
    if (level !== undefined && !isDurability(level)) throw new UsageError(`level: expected one of ${DURABILITY_LEVELS.join(", ")}; got ${level}`);
    return withBus(values, 1, async (bus) => {
      out.print(level === undefined ? await bus.info(topic) : await bus.configure(topic, { durability: level }), infoText);
      return EXIT.ok;
    });
  },
});
