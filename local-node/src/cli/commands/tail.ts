/** `dovetail-local tail <ring>`: print records as they are published. */
import { Ring } from "../../index.ts";
import { defineCommand, EXIT, optionalInteger } from "../command.ts";

/** Bytes of each record shown, in hex. */
const PREVIEW_BYTES = 32;

export const tail = defineCommand({
  name: "tail",
  args: ["<ring>"],
  summary: "print records as they are published",
  description: `Takes a consumer slot and prints one line per record: offset, type, size and the first
${PREVIEW_BYTES} bytes in hex (and how many bytes were lost before it, if it fell behind). Runs until
Ctrl-C, or until --count records were printed.`,
  options: { count: { type: "string", value: "N", help: "exit 0 after N records" } },
  async run({ values, positionals }) {
    const limit = optionalInteger(values.count, "--count", { min: 1 }) ?? Number.POSITIVE_INFINITY;
    const r = Ring.open(positionals[0]!);
    let shown = 0;
    const stop = (): void => r.close();
    process.once("SIGINT", stop);
    try {
      for await (const rec of r) {
        const preview = Buffer.from(rec.data.subarray(0, PREVIEW_BYTES)).toString("hex");
        console.log(`${rec.offset}\ttype ${rec.type}\t${rec.data.length} B\t${rec.lost ? `(lost ${rec.lost} B before) ` : ""}${preview}`);
        if (++shown >= limit) break;
      }
    } finally {
      process.off("SIGINT", stop);
      r.close();
    }
    return EXIT.ok;
  },
});
