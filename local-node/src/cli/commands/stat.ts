/** `dovetail-local stat <ring>`: a ring's header and consumer slots. */
import { Ring, type RingStat } from "../../index.ts";
import { defineCommand, EXIT } from "../command.ts";

/** A ring's state as text: header facts, then one line per consumer slot in use. */
export function formatStat(s: RingStat): string {
  const lines = [
    `ring ${s.name} (${s.path})`,
    `  layout v${s.version}, capacity ${s.capacity} bytes, ${s.maxConsumers} consumer slots, crc ${s.crc ? "on" : "off"}, staleness ${s.stalenessMs} ms`,
    `  head ${s.head}, producer ${s.producerPid === 0 ? "none" : `pid ${s.producerPid} (${s.producerAlive ? "alive" : "dead"})`}, ${s.waitingConsumers} asleep on the doorbell`,
    "  slot  state     pid      alive  tail            lag bytes   heartbeat age  stale",
  ];
  for (const c of s.consumers) {
    lines.push(
      `  ${String(c.slot).padEnd(5)} ${c.state.padEnd(9)} ${String(c.pid).padEnd(8)} ${String(c.alive).padEnd(6)} ${String(c.tail).padEnd(15)} ${String(c.lagBytes).padEnd(11)} ${`${c.heartbeatAgeMs} ms`.padEnd(14)} ${c.stale}`,
    );
  }
  if (s.consumers.length === 0) lines.push("  (no consumers)");
  return lines.join("\n");
}

export const stat = defineCommand({
  name: "stat",
  args: ["<ring>"],
  summary: "show a ring's header, producer and consumer slots",
  description: `Prints the ring's layout, capacity, head and producer, and for each consumer slot in use its
state, pid, position, lag and heartbeat age. A ring that does not exist exits 1 (RING_NOT_FOUND).`,
  options: { json: { type: "boolean", help: "print the state as JSON" } },
  async run({ values, positionals }) {
    const s = Ring.stat(positionals[0]!);
    console.log(values.json ? JSON.stringify(s, null, 2) : formatStat(s));
    return EXIT.ok;
  },
});
