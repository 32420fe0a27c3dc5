/** `dovetail groups reset <topic> <group> --to F`: move a consumer group's position. */
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { groupArgument, positionOption, positionText } from "./group-args.ts";

export const groupsReset = defineCommand({
  name: "groups reset",
  args: ["<topic>", "<group>"],
  summary: "move a consumer group to an offset, earliest, latest or a time (needs admin)",
  description: `Moves the group to --to (needs admin on the topic): the next job it hands out is the message
there, and everything pending is forgotten (members' jobs included; their acks are refused).
Prints the group's new position.`,
  json: `the group's info after the reset, as dovetail groups info --json prints it`,
  options: {
    to: { type: "string", value: "F", help: "earliest, latest, an offset, or an ISO date / milliseconds since the epoch (required)" },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const group = groupArgument(positionals[1]!);
    if (values.to === undefined)
      throw new UsageError("groups reset: --to is required: earliest, latest, an offset or an ISO date (see dovetail groups reset --help)");
    const to = positionOption(values.to, "--to");
    const { admin } = openAdmin(values);
    out.print(
      await admin.groups.reset(topic, group, to),
      (g) => `reset group ${g.group} of ${g.topic} to ${positionText(to)}: ack floor ${g.ackFloor}, head ${g.head}, lag ${g.lag}`,
    );
    return EXIT.ok;
  },
});
