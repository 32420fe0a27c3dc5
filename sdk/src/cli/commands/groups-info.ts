/** `dovetail groups info <topic> <group>`: one consumer group's settings, position, members, pending jobs and totals. */
import type { GroupInfo } from "../../../../protocol/groups.ts";
import { durationText, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { fields, isoTime, table } from "../output.ts";
import { groupArgument } from "./group-args.ts";

/** A group's info as `name  value` lines, then its members and pending jobs as tables (when it has any). */
export function groupInfoText(g: GroupInfo): string {
  const s = g.settings;
  const shownPending = g.pending.length < g.pendingCount ? ` (the first ${g.pending.length} below)` : "";
  const parts = [
    fields([
      ["group", g.group],
      ["topic", g.topic],
      ["created", isoTime(g.created)],
      ["ack floor", g.ackFloor],
      ["head", g.head],
      ["lag", g.lag],
      ["pending", `${g.pendingCount}${shownPending}`],
      ["members", g.members.length],
      ["ack wait", durationText(s.ackWaitMs)],
      ["max deliver", s.maxDeliver],
      ["backoff", s.backoffMs.length === 0 ? "none" : s.backoffMs.map(durationText).join(", ")],
      ["max ack pending", s.maxAckPending],
      ["ordered by key", s.orderedByKey ? "yes" : "no"],
      ["message ttl", s.messageTtlMs === null ? "none" : durationText(s.messageTtlMs)],
      ["dead letters", `${s.deadLetterTopic}${s.deadLetterExpired ? " (expired messages too)" : ""}`],
      [
        "stats",
        `delivered ${g.stats.delivered}, redelivered ${g.stats.redelivered}, acked ${g.stats.acked}, dead-lettered ${g.stats.deadLettered}, expired ${g.stats.expired}`,
      ],
    ]),
  ];
  if (g.members.length > 0) {
    parts.push(
      table([["MEMBER", "TRANSPORT", "HELD", "MAX ACK PENDING"], ...g.members.map((m) => [m.member, m.transport, String(m.held), String(m.maxAckPending)])]),
    );
  }
  if (g.pending.length > 0) {
    parts.push(
      table([
        ["OFFSET", "DELIVERY", "MEMBER", "DEADLINE"],
        ...g.pending.map((p) => [String(p.offset), String(p.delivery), p.member ?? "-", isoTime(p.deadline)]),
      ]),
    );
  }
  return parts.join("\n\n");
}

export const groupsInfo = defineCommand({
  name: "groups info",
  args: ["<topic>", "<group>"],
  summary: "print a consumer group's settings, position, members and pending jobs",
  description: `Prints the group's position (ack floor, head, lag), its settings and running totals, then its
members (transport, jobs held) and the first 100 pending jobs (delivered and not settled: held,
waiting to be delivered again, or on their way to the dead-letter topic). A group that does not
exist exits 1 (group_not_found).`,
  json: `the info as the bus answers it: {"group","topic","settings","created","ackFloor","head","lag","pendingCount","pending","members","stats"}`,
  options: {},
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const group = groupArgument(positionals[1]!);
    return withBus(values, 1, async (bus) => {
      out.print(await bus.group(topic, group), groupInfoText);
      return EXIT.ok;
    });
  },
});
