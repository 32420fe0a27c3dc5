/**
 * `dovetail-local bridge <ring> <topic>`: keep a ring and an edge topic in step until
 * SIGINT/SIGTERM, printing one JSON line per event on stdout (`{"event":"resume",...}`,
 * `{"event":"gap",...}`, `{"event":"stopped","stats":{...}}`).
 */
import { bridge as startBridge, BridgeError, type BridgeOptions } from "../../index.ts";
import { defineCommand, EXIT, integerOption, optionalInteger, UsageError } from "../command.ts";

const DIRECTIONS = ["edge-to-local", "local-to-edge"];

/** `--from`: an edge offset (digits) or a word the bridge checks against the direction. */
function fromOption(raw: string | undefined): BridgeOptions["from"] {
  if (raw === undefined) return undefined;
  if (/^\d+$/.test(raw)) return integerOption(raw, "--from");
  return raw as BridgeOptions["from"]; // the words are checked by bridge() (BRIDGE_INVALID: exit 2)
}

export const bridge = defineCommand({
  name: "bridge",
  args: ["<ring>", "<topic>"],
  summary: "keep a ring and an edge topic in step",
  description: `Forwards an edge topic into a ring (edge-to-local) or a ring to an edge topic (local-to-edge),
resuming without duplicates or gaps after a restart. Prints one JSON line per event on stdout and
{"event":"stopped","stats":{...}} at the end. Runs until SIGINT or SIGTERM (exit 0); exits 1 when
the ring or the edge fails. See local-node/README.md, "Bridge".`,
  options: {
    direction: { type: "string", value: "D", help: "edge-to-local or local-to-edge (required)" },
    url: { type: "string", value: "URL", help: "bus URL (default $DOVETAIL_URL, else http://127.0.0.1:8787)" },
    token: { type: "string", value: "T", help: "API key or JWT (default $DOVETAIL_TOKEN)" },
    format: { type: "string", value: "F", help: "local-to-edge: bytes (default) or json" },
    from: {
      type: "string",
      value: "F",
      help: "without a resume point: earliest (default), latest or an offset (edge-to-local);\noldest (default) or head (local-to-edge)",
    },
    "max-batch": { type: "string", value: "N", help: "records per ring batch or edge frame (default 256)" },
    capacity: { type: "string", value: "BYTES", help: "edge-to-local: ring capacity when the bridge creates it" },
    consumers: { type: "string", value: "N", help: "edge-to-local: consumer slots when the bridge creates it" },
    source: { type: "string", value: "NAME", help: "local-to-edge: the ring header's value (default the ring name)" },
  },
  async run({ values, positionals }) {
    const [ring, topic] = positionals as [string, string];
    const direction = values.direction;
    if (direction === undefined) throw new UsageError(`bridge: give --direction ${DIRECTIONS.join(" or ")}`);
    const ringOptions: NonNullable<BridgeOptions["ringOptions"]> = {};
    const capacity = optionalInteger(values.capacity, "--capacity", { min: 1 });
    const consumers = optionalInteger(values.consumers, "--consumers", { min: 1 });
    if (capacity !== undefined) ringOptions.capacity = capacity;
    if (consumers !== undefined) ringOptions.maxConsumers = consumers;
    const print = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
    let b: ReturnType<typeof startBridge>;
    try {
      b = startBridge({
        ring,
        topic,
        direction: direction as BridgeOptions["direction"],
        url: values.url,
        token: values.token,
        format: values.format as BridgeOptions["format"],
        from: fromOption(values.from),
        maxBatch: optionalInteger(values["max-batch"], "--max-batch", { min: 1 }),
        source: values.source,
        ringOptions,
        onEvent: (e) => {
          const { type, ...rest } = e;
          if (type !== "stopped") print({ event: type, ...rest });
        },
      });
    } catch (error) {
      // Options the bridge refuses before it starts are usage errors.
      if (error instanceof BridgeError && error.code === "BRIDGE_INVALID") throw new UsageError(`bridge: ${error.message}`);
      throw error;
    }
    const stop = (): void => void b.close();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await b.done;
      print({ event: "stopped", stats: b.stats });
      return EXIT.ok;
    } catch (error) {
      print({ event: "stopped", stats: b.stats, error: (error as Error).message });
      throw error;
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  },
});
