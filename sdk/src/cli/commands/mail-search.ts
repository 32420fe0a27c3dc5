/** `dovetail mail search <query>`: full-text search over the mail this token may read. */
import type { SearchQuery } from "../../../../protocol/mail.ts";
import { MAX_MAIL_PAGE } from "../../../../protocol/mail.ts";
import { integerOption, timeOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { isoTime } from "../output.ts";
import { agentArgument, threadArgument } from "./mail-args.ts";

export const mailSearch = defineCommand({
  name: "mail search",
  args: ["<query>"],
  summary: "search mail with FTS5 (subject and body), best match first",
  description: `The query is FTS5 syntax: words (stemmed: "failing" finds "failed"), "exact phrases", AND / OR /
NOT, prefix*, subject:word. Prints one hit per line (id, time, sender, subject) with the body's
snippet, matches between ** **. Only mail the token may read is searched. A query FTS5 cannot
parse is an error (invalid_query, exit 1).`,
  json: `{"hits":[{"message":{…},"rank":R,"snippets":{"subject","body"}}],"next"?}`,
  options: {
    from: { type: "string", value: "A", help: "only mail sent by agent A" },
    to: { type: "string", value: "A", help: "only mail to agent A" },
    thread: { type: "string", value: "T", help: "only thread T" },
    since: { type: "string", value: "TIME", help: "only mail since TIME" },
    until: { type: "string", value: "TIME", help: "only mail before TIME" },
    limit: { type: "string", value: "N", help: `at most N hits (default 50, at most ${MAX_MAIL_PAGE})` },
  },
  async run({ values, positionals, out }) {
    const query: SearchQuery = { q: positionals[0]! };
    if (values.from !== undefined) query.from = agentArgument(values.from, "--from");
    if (values.to !== undefined) query.to = agentArgument(values.to, "--to");
    if (values.thread !== undefined) query.threadId = threadArgument(values.thread);
    if (values.since !== undefined) query.since = timeOption(values.since, "--since");
    if (values.until !== undefined) query.until = timeOption(values.until, "--until");
    if (values.limit !== undefined) query.limit = integerOption(values.limit, "--limit", { min: 1, max: MAX_MAIL_PAGE });
    return withBus(values, 1, async (bus) => {
      const page = await bus.mail.search(query);
      out.print(page, () =>
        page.hits.length === 0
          ? "no matches"
          : page.hits
              .map(
                (h) =>
                  `${String(h.message.id).padStart(6)}  ${isoTime(h.message.createdAt)}  ${h.message.from.padEnd(16)}  ${h.snippets.subject}\n        ${h.snippets.body}`,
              )
              .join("\n"),
      );
      return EXIT.ok;
    });
  },
});
