/** `dovetail groups rm <topic> <group>`: delete a consumer group. */
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { groupArgument } from "./group-args.ts";

export const groupsRm = defineCommand({
  name: "groups rm",
  args: ["<topic>", "<group>"],
  summary: "delete a consumer group (needs admin on the topic)",
  description: `Deletes the group, its position and its pending jobs (needs admin on the topic). Its members'
consumers end with a "group_deleted" error. The topic's messages and the dead-letter topic stay.
A group that does not exist exits 1 (group_not_found).`,
  json: `{"topic","group","deleted":true,"closedMembers":N}`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const group = groupArgument(positionals[1]!);
    const { admin } = openAdmin(values);
    const { closedMembers } = await admin.groups.delete(topic, group);
    out.print(
      { topic, group, deleted: true, closedMembers },
      (r) => `deleted group ${r.group} of ${r.topic}; closed ${r.closedMembers} member${r.closedMembers === 1 ? "" : "s"}`,
    );
    return EXIT.ok;
  },
});
