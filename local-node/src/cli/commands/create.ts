/** `dovetail-local create <ring>`: make a ring (or adopt an existing one with the same options). */
import { Ring } from "../../index.ts";
import { defineCommand, EXIT, optionalInteger } from "../command.ts";
import { formatStat } from "./stat.ts";

export const create = defineCommand({
  name: "create",
  args: ["<ring>"],
  summary: "create a ring in /dev/shm",
  description: `Creates the ring (or opens it when it exists with the same options) and prints its state. A
ring that exists with other options exits 1 (RING_MISMATCH).`,
  options: {
    capacity: { type: "string", value: "BYTES", help: "data bytes, a power of two (default 1048576)" },
    consumers: { type: "string", value: "N", help: "consumer slots (default 8)" },
    crc: { type: "boolean", help: "check every record with CRC32C" },
    "staleness-ms": { type: "string", value: "MS", help: "skip a consumer silent this long (default 5000; 0 never)" },
  },
  async run({ values, positionals }) {
    const ring = positionals[0]!;
    const options = {
      capacity: optionalInteger(values.capacity, "--capacity", { min: 1 }),
      maxConsumers: optionalInteger(values.consumers, "--consumers", { min: 1 }),
      crc: values.crc,
      stalenessMs: optionalInteger(values["staleness-ms"], "--staleness-ms"),
    };
    const w = Ring.create(ring, options);
    w.close();
    console.log(formatStat(Ring.stat(ring)));
    return EXIT.ok;
  },
});
