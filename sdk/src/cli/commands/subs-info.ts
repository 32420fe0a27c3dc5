/** `dovetail subs info <id>`: one Durable Streams subscription, its linked streams and their cursors. */
import type { SubscriptionView } from "../../ds-subscriptions.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { fields, table } from "../output.ts";
import { subscriptionArgument } from "./subs-args.ts";

/** A subscription as `name  value` lines, then its linked streams as a table (when it has any). */
export function subscriptionText(s: SubscriptionView): string {
  const parts = [
    fields([
      ["subscription", s.id],
      ["type", s.type],
      ["status", s.status],
      ["pattern", s.pattern ?? "-"],
      [s.type === "webhook" ? "webhook" : "wake stream", (s.type === "webhook" ? s.webhook?.url : s.wake_stream) ?? "-"],
      ...(s.webhook ? ([["signing key", `${s.webhook.signing.kid} (${s.webhook.signing.jwks_url})`]] as [string, string][]) : []),
      ["lease", `${s.lease_ttl_ms} ms`],
      ["created", s.created_at],
      ["streams", s.streams.length],
      ["description", s.description ?? "-"],
    ]),
  ];
  if (s.streams.length > 0) parts.push(table([["STREAM", "LINK", "ACKED OFFSET"], ...s.streams.map((l) => [l.path, l.link_type, l.acked_offset])]));
  return parts.join("\n\n");
}

export const subsInfo = defineCommand({
  name: "subs info",
  args: ["<id>"],
  summary: "print a Durable Streams subscription: its streams and their cursors",
  description: `Prints the subscription (docs/streams.md "Subscriptions"): its type, pattern, webhook or wake
stream, status (failed while a webhook is being retried), then every linked stream with how it was
linked (glob or explicit) and its cursor, the offset to read from next. Needs consume or admin.
A subscription that does not exist exits 1 (not_found).`,
  json: `the subscription as the bus answers it: {"id","type","pattern","streams":[{"path","link_type","acked_offset"}],"status",...}`,
  options: {},
  async run({ values, positionals, out }) {
    const id = subscriptionArgument(positionals[0]!);
    return withBus(values, 1, async (bus) => {
      out.print(await (await bus.streamSubscriptions()).get(id), subscriptionText);
      return EXIT.ok;
    });
  },
});
