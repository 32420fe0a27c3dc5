/** `dovetail mail inbox <agent>`: an agent's inbox, newest first; --read / --ack mark a message. */
import type { InboxQuery } from "../../../../protocol/mail.ts";
import { MAX_MAIL_PAGE } from "../../../../protocol/mail.ts";
import { integerOption, timeOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { fields, isoTime } from "../output.ts";
import { agentArgument, mailLine, threadArgument } from "./mail-args.ts";

export const mailInbox = defineCommand({
  name: "mail inbox",
  args: ["<agent>", "[id]"],
  summary: "list an agent's inbox, or show, mark read or acknowledge one message",
  description: `Without [id]: one line per message (id, time, new/read/acked, sender, subject, thread), newest
first; --unread, --thread and --since narrow it. With [id]: the whole message, body included;
--read marks it read, --ack acknowledges it. The token needs subscribe on _mail.<agent>.`,
  json: `the page {"agent","messages":[…],"next"?}; with [id] the message; with --read/--ack {"id","readAt","ackedAt",…}`,
  options: {
    unread: { type: "boolean", help: "only messages not marked read" },
    thread: { type: "string", value: "T", help: "only thread T" },
    since: { type: "string", value: "TIME", help: "only messages since TIME (ISO date or ms since the epoch)" },
    limit: { type: "string", value: "N", help: `at most N messages (default 50, at most ${MAX_MAIL_PAGE})` },
    read: { type: "boolean", help: "with [id]: mark it read" },
    ack: { type: "boolean", help: "with [id]: acknowledge it (also marks it read)" },
  },
  async run({ values, positionals, out }) {
    const agent = agentArgument(positionals[0]!);
    const idText = positionals[1];
    const id = idText === undefined ? undefined : integerOption(idText, "id", { min: 1 });
    if ((values.read || values.ack) && id === undefined) throw new UsageError("--read and --ack need a message id");
    const query: InboxQuery = {};
    if (values.unread) query.unread = true;
    if (values.thread !== undefined) query.threadId = threadArgument(values.thread);
    if (values.since !== undefined) query.since = timeOption(values.since, "--since");
    if (values.limit !== undefined) query.limit = integerOption(values.limit, "--limit", { min: 1, max: MAX_MAIL_PAGE });
    return withBus(values, 1, async (bus) => {
      if (id !== undefined && (values.read || values.ack)) {
        const state = values.ack ? await bus.mail.ack(agent, id) : await bus.mail.markRead(agent, id);
        out.print(state, () => `message ${id}: read ${isoTime(state.readAt)}, acknowledged ${isoTime(state.ackedAt)}`);
      } else if (id !== undefined) {
        const m = await bus.mail.read(agent, id);
        out.print(m, () =>
          [
            fields([
              ["id", m.id],
              ["thread", m.threadId],
              ["from", m.from],
              ["to", m.to.join(", ")],
              ...(m.cc.length > 0 ? [["cc", m.cc.join(", ")] as [string, string]] : []),
              ...(m.bcc && m.bcc.length > 0 ? [["bcc", m.bcc.join(", ")] as [string, string]] : []),
              ["subject", m.subject],
              ["sent", isoTime(m.createdAt)],
              ["importance", m.importance],
            ]),
            "",
            m.bodyMd ?? "",
          ].join("\n"),
        );
      } else {
        const page = await bus.mail.inbox(agent, query);
        out.print(page, () => (page.messages.length === 0 ? "no messages" : page.messages.map(mailLine).join("\n")));
      }
      return EXIT.ok;
    });
  },
});
