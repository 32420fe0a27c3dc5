/** `dovetail groups ls <topic>`: a topic's consumer groups, with their floors, lag, pending jobs and members. */
import type { GroupInfo } from "../../../../protocol/groups.ts";
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { table } from "../output.ts";

function groupTable(topic: string, groups: GroupInfo[]): string {
  if (groups.length === 0) return `no groups on ${topic}`;
  return table([
    ["GROUP", "ACK FLOOR", "LAG", "PENDING", "MEMBERS"],
    ...groups.map((g) => [g.group, String(g.ackFloor), String(g.lag), String(g.pendingCount), String(g.members.length)]),
  ]);
}

export const groupsLs = defineCommand({
  name: "groups ls",
  args: ["<topic>"],
  summary: "list a topic's consumer groups",
  description: `Prints a table of the topic's consumer groups: the ack floor (every offset below it is
settled), the lag (head minus ack floor), the jobs delivered and not settled, and the members.`,
  json: `the groups' info (as dovetail groups info --json prints it) as one JSON array`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    return withBus(values, 1, async (bus) => {
      out.print(await bus.groups(topic), (groups) => groupTable(topic, groups));
      return EXIT.ok;
    });
  },
});
