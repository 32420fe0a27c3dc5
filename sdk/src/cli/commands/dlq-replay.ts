/** `dovetail dlq replay <topic> <group>`: deliver a consumer group's dead letters again. */
import { MAX_FETCH_JOBS } from "../../../../protocol/groups.ts";
import { integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { groupArgument } from "./group-args.ts";

/** The bus's page when none is given (objects/groups/groups-module.ts). */
const REPLAY_LIMIT_DEFAULT = 100;

export const dlqReplay = defineCommand({
  name: "dlq replay",
  args: ["<topic>", "<group>"],
  summary: "deliver a consumer group's dead letters again (needs admin)",
  description: `Reads one page of the group's dead-letter topic (default <topic>.dlq) from --from and makes
each of this group's letters available to the group again, its delivery count back to 0, as long
as retention still keeps the message in <topic> (needs admin on the topic). Prints how many were
replayed, how many letters were read (other groups' letters are read and left alone) and the
offset to continue from.`,
  json: `{"replayed","read","next"}`,
  options: {
    from: { type: "string", value: "N", help: "first dead-letter offset to read (default 0)" },
    limit: { type: "string", value: "N", help: `read at most N letters, 1 to ${MAX_FETCH_JOBS} (default ${REPLAY_LIMIT_DEFAULT})` },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const group = groupArgument(positionals[1]!);
    const page: { from?: number; limit?: number } = {};
    if (values.from !== undefined) page.from = integerOption(values.from, "--from");
    if (values.limit !== undefined) page.limit = integerOption(values.limit, "--limit", { min: 1, max: MAX_FETCH_JOBS });
    const { admin } = openAdmin(values);
    out.print(
      await admin.groups.replay(topic, group, page),
      (r) => `replayed ${r.replayed} of ${r.read} dead letter${r.read === 1 ? "" : "s"} read; continue with --from ${r.next}`,
    );
    return EXIT.ok;
  },
});
