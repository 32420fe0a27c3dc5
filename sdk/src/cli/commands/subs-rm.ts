/** `dovetail subs rm <id>`: delete a Durable Streams subscription. */
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { subscriptionArgument } from "./subs-args.ts";

export const subsRm = defineCommand({
  name: "subs rm",
  args: ["<id>"],
  summary: "delete a Durable Streams subscription (needs admin)",
  description: `Deletes the subscription and its cursors (needs admin:>). A wake in flight ends: its callbacks,
acks and releases fail with not_found and move nothing. The streams stay. A subscription that
does not exist exits 1 (not_found).`,
  json: `{"id","deleted":true}`,
  options: {},
  async run({ values, positionals, out }) {
    const id = subscriptionArgument(positionals[0]!);
    return withBus(values, 1, async (bus) => {
      await (await bus.streamSubscriptions()).delete(id);
      out.print({ id, deleted: true }, (r) => `deleted subscription ${r.id}`);
      return EXIT.ok;
    });
  },
});
