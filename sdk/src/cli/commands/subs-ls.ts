/** `dovetail subs ls`: the tenant's Durable Streams subscriptions. */
import { integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { table } from "../output.ts";
import type { SubscriptionView } from "../../ds-subscriptions.ts";

export const subsLs = defineCommand({
  name: "subs ls",
  args: [],
  summary: "list the tenant's Durable Streams subscriptions",
  description: `Lists the subscriptions of your tenant in id order: type, status, pattern, how many streams are
linked. --limit N shows at most N (1 to 100, default 50); the last line then says how to go on.
Needs consume or admin.`,
  json: `{"subscriptions":[{"id","type","pattern","streams",...}],"cursor":C|null}`,
  options: {
    limit: { type: "string", value: "N", help: "at most N subscriptions, 1 to 100 (default 50)" },
    cursor: { type: "string", value: "C", help: "continue after this subscription id (the cursor of the previous page)" },
  },
  async run({ values, out }) {
    const page: { cursor?: string; limit?: number } = {};
    if (values.limit !== undefined) page.limit = integerOption(values.limit, "--limit", { min: 1, max: 100 });
    if (values.cursor !== undefined) page.cursor = values.cursor;
    return withBus(values, 1, async (bus) => {
      const list = await (await bus.streamSubscriptions()).list(page);
      out.print(list, (l: { subscriptions: SubscriptionView[]; cursor: string | null }) => {
        if (l.subscriptions.length === 0) return "no subscriptions";
        const rows = l.subscriptions.map((s) => [s.id, s.type, s.status, s.pattern ?? "-", String(s.streams.length)]);
        const text = table([["ID", "TYPE", "STATUS", "PATTERN", "STREAMS"], ...rows]);
        return l.cursor === null ? text : `${text}\nmore: dovetail subs ls --cursor ${l.cursor}`;
      });
      return EXIT.ok;
    });
  },
});
