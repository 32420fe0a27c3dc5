/**
 * `dovetail top`: the tenant's topics and consumer groups with their rates, refreshed in place
 * (docs/observability.md): the figures of `GET /metrics`, read as JSON through the admin client.
 * Rates are the difference between two reads over the time between them; the bus's figures are
 * themselves up to a report interval (5 s) old.
 */
import type { TenantMetrics } from "../../admin.ts";
import { durationOption, integerOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { table } from "../output.ts";

/** Default time between refreshes. */
const DEFAULT_INTERVAL_MS = 2_000;
/** Clears a terminal and puts the cursor home (ANSI). */
const CLEAR_SCREEN = "\x1b[H\x1b[2J";

interface Snapshot {
  at: number;
  metrics: TenantMetrics;
}

function sum(counts: Record<string, number | undefined>): number {
  let n = 0;
  for (const v of Object.values(counts)) n += v ?? 0;
  return n;
}

function rate(now: number, before: number | undefined, seconds: number): string {
  if (before === undefined || seconds <= 0) return "-";
  return (Math.max(0, now - before) / seconds).toFixed(1);
}

/** The text view of one snapshot, with rates against the one before (none on the first). */
export function topText(now: Snapshot, before: Snapshot | null): string {
  const seconds = before ? (now.at - before.at) / 1000 : 0;
  const prior = new Map(before?.metrics.topics.map((t) => [t.name, t]) ?? []);
  const topics = now.metrics.topics;
  const rows = [["TOPIC", "PUB/S", "DEL/S", "HEAD", "MESSAGES", "BYTES", "SUBS", "CONNS"]];
  const groups = [["TOPIC", "GROUP", "LAG", "PENDING"]];
  let failures = 0;
  let dlq = 0;
  let backpressure = 0;
  for (const t of topics) {
    const p = prior.get(t.name);
    rows.push([
      t.name,
      rate(t.counters.published, p?.counters.published, seconds),
      rate(t.counters.delivered, p?.counters.delivered, seconds),
      String(t.head),
      String(t.messages),
      String(t.bytes),
      String(t.subscribers),
      String(t.gauges.connections),
    ]);
    for (const g of t.gauges.groups) groups.push([t.name, g.group, String(g.lag), String(g.pending)]);
    failures += sum(t.counters.failures);
    dlq += t.counters.dlq;
    backpressure += t.counters.backpressure;
  }
  const parts = [`${topics.length} topics  ${new Date(now.at).toISOString()}${before ? `  (rates over ${seconds.toFixed(1)} s)` : ""}`, "", table(rows)];
  if (groups.length > 1) parts.push("", table(groups));
  parts.push(
    "",
    `delivery failures ${failures}  dead letters ${dlq}  backpressure ${backpressure}  rate-limited ${sum(now.metrics.gateway.rateLimited)}  auth failures ${sum(now.metrics.gateway.authFailures)}`,
  );
  return parts.join("\n");
}

export const top = defineCommand({
  name: "top",
  args: [],
  summary: "show your tenant's topics and groups with their rates, refreshing",
  description: `Shows every topic of your tenant (messages published and delivered per second, head, stored
messages and bytes, subscribers, connections), every consumer group's lag and pending jobs, and
the totals of delivery failures, dead letters, backpressure and refusals; refreshed every
--interval until Ctrl-C (or --count refreshes). The bus's figures are up to 5 s old. Needs a
credential with admin:>. With --json, prints the figures once, as GET /metrics?format=json
answers them, and exits.`,
  json: `{"topics":[{"name","messages","bytes","subscribers","head","counters":{...},"gauges":{"connections","groups":[...]}}],"gateway":{"rateLimited","authFailures"}}, once`,
  options: {
    interval: { type: "string", value: "D", help: "time between refreshes, e.g. 2s (default), 500ms" },
    count: { type: "string", value: "N", help: "exit 0 after N refreshes" },
  },
  async run({ values, out }) {
    const intervalMs = values.interval === undefined ? DEFAULT_INTERVAL_MS : durationOption(values.interval, "--interval");
    const count = values.count === undefined ? Number.POSITIVE_INFINITY : integerOption(values.count, "--count", { min: 1 });
    const { admin } = openAdmin(values);
    if (out.json) {
      out.print(await admin.metrics(), () => "");
      return EXIT.ok;
    }
    let stop = false;
    process.once("SIGINT", () => {
      stop = true;
      process.exit(EXIT.interrupted);
    });
    const clear = process.stdout.isTTY === true;
    let before: Snapshot | null = null;
    for (let i = 0; i < count && !stop; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
      const now: Snapshot = { at: Date.now(), metrics: await admin.metrics() };
      out.print(now, (s) => `${clear ? CLEAR_SCREEN : i > 0 ? "\n" : ""}${topText(s, before)}`);
      before = now;
    }
    return EXIT.ok;
  },
});
