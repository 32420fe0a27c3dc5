/** `dovetail mail thread <thread>`: a thread in order, with who has read and acknowledged each message. */
import { MAX_MAIL_PAGE } from "../../../../protocol/mail.ts";
import { integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { isoTime } from "../output.ts";
import { threadArgument } from "./mail-args.ts";

export const mailThread = defineCommand({
  name: "mail thread",
  args: ["<thread>"],
  summary: "show a thread in order with read and acknowledgement state",
  description: `Prints each message of the thread that the token may read, oldest first: id, time, sender,
subject, then one line per recipient with when it read and acknowledged the message.`,
  json: `{"threadId","messages":[{…,"recipients":[{"agent","kind","readAt","ackedAt"}]}],"next"?}`,
  options: {
    limit: { type: "string", value: "N", help: `at most N messages (default 50, at most ${MAX_MAIL_PAGE})` },
  },
  async run({ values, positionals, out }) {
    const threadId = threadArgument(positionals[0]!);
    const limit = values.limit === undefined ? undefined : integerOption(values.limit, "--limit", { min: 1, max: MAX_MAIL_PAGE });
    return withBus(values, 1, async (bus) => {
      const page = await bus.mail.thread(threadId, limit === undefined ? {} : { limit });
      out.print(page, () =>
        page.messages
          .map((m) =>
            [
              `${String(m.id).padStart(6)}  ${isoTime(m.createdAt)}  ${m.from}: ${m.subject}`,
              ...(m.recipients ?? []).map((r) => `        ${r.kind.padEnd(3)} ${r.agent.padEnd(16)} read ${isoTime(r.readAt)}  acked ${isoTime(r.ackedAt)}`),
            ].join("\n"),
          )
          .join("\n"),
      );
      return EXIT.ok;
    });
  },
});
