/** `dovetail bench <topic>`: publish rate and end-to-end latency against a live bus. */
import { integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { withBus } from "../connection.ts";
import { EXIT } from "../errors.ts";

/** Reconnect attempts during a bench run. */
const BENCH_MAX_ATTEMPTS = 5;
/** How long to wait, after the last publish, for subscribers to receive everything. */
const BENCH_DRAIN_MS = 10_000;
/** The progress line's period on stderr. */
const BENCH_TICK_MS = 1000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (n: number | null) => (n === null ? null : Math.round(n * 100) / 100);

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? null) };
}

type Stats = ReturnType<typeof stats>;
const statsText = (s: Stats) => `p50 ${s.p50 ?? "-"} p99 ${s.p99 ?? "-"} max ${s.max ?? "-"} ms`;

export const bench = defineCommand({
  name: "bench",
  args: ["<topic>"],
  summary: "measure publish rate and end-to-end latency",
  description: `Publishes B-byte messages at R msg/s (0 = as fast as confirms allow) for S seconds while N
subscribers read them. Prints a progress line every second on stderr (rate, publish-confirm and
end-to-end latency percentiles), then a summary. Exits 1 if a subscriber missed messages.`,
  json: `the summary: {"topic","rate","size","subs","sent","confirmed","received","confirmedPerSecond","confirmMs","endToEndMs"}`,
  options: {
    rate: { type: "string", value: "R", help: "messages per second (default 1000; 0 = unpaced)" },
    size: { type: "string", value: "B", help: "payload bytes per message (default 100)" },
    subs: { type: "string", value: "N", help: "subscribers (default 1)" },
    duration: { type: "string", value: "S", help: "seconds (default 10)" },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const rate = values.rate === undefined ? 1000 : integerOption(values.rate, "--rate");
    const size = values.size === undefined ? 100 : integerOption(values.size, "--size");
    const subs = values.subs === undefined ? 1 : integerOption(values.subs, "--subs");
    const durationMs = (values.duration === undefined ? 10 : integerOption(values.duration, "--duration", { min: 1 })) * 1000;
    return withBus(values, BENCH_MAX_ATTEMPTS, async (bus) => {
      const { head } = await bus.info(topic);
      const pad = "x".repeat(Math.max(0, size - 30));
      const e2eAll: number[] = [];
      const confirmAll: number[] = [];
      let e2eWindow: number[] = [];
      let confirmWindow: number[] = [];
      let received = 0;
      const readers = Array.from({ length: subs }, () => bus.subscribe<{ t: number }>(topic, { from: head }));
      const reading = readers.map(async (r) => {
        for await (const m of r) {
          const latency = performance.now() - m.data.t;
          e2eAll.push(latency);
          e2eWindow.push(latency);
          received++;
        }
      });
      const publisher = bus.publisher(topic, { lingerMs: rate === 0 ? 1 : 0 });
      const start = performance.now();
      let sent = 0;
      let confirmed = 0;
      let lastTick = start;
      let lastConfirmed = 0;
      const progress = setInterval(() => {
        const now = performance.now();
        const c = stats(confirmWindow);
        const e = stats(e2eWindow);
        const line = `${Math.round(((confirmed - lastConfirmed) * 1000) / (now - lastTick))} msg/s confirmed  confirm p50 ${c.p50 ?? "-"} p99 ${c.p99 ?? "-"} ms  end-to-end p50 ${e.p50 ?? "-"} p99 ${e.p99 ?? "-"} ms  (${confirmed} sent, ${received} received)`;
        process.stderr.write(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
        lastTick = now;
        lastConfirmed = confirmed;
        confirmWindow = [];
        e2eWindow = [];
      }, BENCH_TICK_MS);
      try {
        while (performance.now() - start < durationMs) {
          const due = rate === 0 ? sent + 1000 : Math.floor(((performance.now() - start) * rate) / 1000);
          while (sent < due) {
            if (rate === 0) await publisher.ready();
            const t = performance.now();
            publisher.send({ t, pad }).then(
              () => {
                const latency = performance.now() - t;
                confirmAll.push(latency);
                confirmWindow.push(latency);
                confirmed++;
              },
              () => {},
            );
            sent++;
          }
          await new Promise((r) => setTimeout(r, rate === 0 ? 0 : 1));
        }
        await publisher.flush();
        const elapsedMs = performance.now() - start;
        const deadline = performance.now() + BENCH_DRAIN_MS;
        while (received < sent * subs && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const summary = {
          topic,
          rate,
          size,
          subs,
          sent,
          confirmed,
          received,
          confirmedPerSecond: Math.round((confirmed * 1000) / elapsedMs),
          confirmMs: stats(confirmAll),
          endToEndMs: stats(e2eAll),
        };
        clearInterval(progress);
        if (process.stderr.isTTY) process.stderr.write("\n");
        out.print(summary, (s) =>
          [
            `${s.topic}: ${s.sent} sent, ${s.confirmed} confirmed (${s.confirmedPerSecond} msg/s), ${s.received} received by ${s.subs} subscriber${s.subs === 1 ? "" : "s"}`,
            `publish confirm  ${statsText(s.confirmMs)}`,
            `end to end       ${statsText(s.endToEndMs)}`,
          ].join("\n"),
        );
        return received >= sent * subs ? EXIT.ok : EXIT.failed;
      } finally {
        clearInterval(progress);
        for (const r of readers) r.close();
        await Promise.allSettled(reading);
      }
    });
  },
});
