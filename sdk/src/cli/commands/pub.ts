/** `dovetail pub <topic> [json|-]`: publish one message, or one per stdin line. */
import { createInterface } from "node:readline";
import type { PublishOptions } from "../../index.ts";
import { topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { startProgress } from "../progress.ts";

/** Reconnect attempts while publishing: a stream of stdin lines should survive a blip. */
const PUB_MAX_ATTEMPTS = 5;

/** JSON when it parses, else the text as a string. */
function payload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function headerOption(pairs: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of pairs) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new UsageError(`--header: expected name=value, got ${JSON.stringify(h)}`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  return headers;
}

export const pub = defineCommand({
  name: "pub",
  args: ["<topic>", "[json|-]"],
  summary: "publish one message, or one per stdin line",
  description: `Publishes one message and prints the offset it was stored at. The argument is parsed as JSON;
text that is not valid JSON is sent as a string. With "-" (or no argument and piped input), each
stdin line is one message (same rule), sent in batches with confirms; prints how many were stored
and their offsets. On a terminal, stderr shows the count and rate while it runs.`,
  json: `{"offset":N}, or for stdin {"count":N,"firstOffset":A,"lastOffset":B}`,
  options: {
    key: { type: "string", value: "K", help: "message key" },
    header: { type: "string", multiple: true, value: "name=value", help: "message header (repeatable)" },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const options: PublishOptions = {
      ...(values.key !== undefined ? { key: values.key } : {}),
      ...(values.header ? { headers: headerOption(values.header) } : {}),
    };
    const arg = positionals[1];
    if (arg === undefined && process.stdin.isTTY) throw new UsageError(`pub: give a message, or "-" with piped input for one message per line`);
    return withBus(values, PUB_MAX_ATTEMPTS, async (bus) => {
      if (arg !== undefined && arg !== "-") {
        const { offset } = await bus.publish(topic, payload(arg), options);
        out.print({ offset }, () => `stored in ${topic} at offset ${offset}`);
        return EXIT.ok;
      }
      const publisher = bus.publisher(topic);
      const progress = startProgress(process.stderr, "published");
      const sends: Promise<number>[] = [];
      let firstError: unknown = null;
      try {
        for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
          if (line === "") continue;
          await publisher.ready();
          if (firstError) break;
          const send = publisher.send(payload(line), options);
          send.then(
            () => progress.add(),
            (e: unknown) => (firstError ??= e),
          );
          sends.push(send);
        }
        await publisher.flush();
      } finally {
        progress.stop();
      }
      if (firstError) throw firstError;
      const offsets = await Promise.all(sends);
      const result = { count: offsets.length, firstOffset: offsets[0] ?? null, lastOffset: offsets.at(-1) ?? null };
      out.print(result, (r) =>
        r.count === 0
          ? `no lines on stdin; nothing published to ${topic}`
          : `stored ${r.count} messages in ${topic} at offsets ${r.firstOffset}..${r.lastOffset}`,
      );
      return EXIT.ok;
    });
  },
});
