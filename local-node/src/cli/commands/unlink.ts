/** `dovetail-local unlink <ring>`: remove a ring's segment. */
import { Ring } from "../../index.ts";
import { defineCommand, EXIT } from "../command.ts";

export const unlink = defineCommand({
  name: "unlink",
  args: ["<ring>"],
  summary: "remove a ring from /dev/shm",
  description: "Removes the ring's segment. Processes that have it open keep their mapping until they close it.",
  options: {},
  async run({ positionals }) {
    const ring = positionals[0]!;
    console.log(Ring.unlink(ring) ? `removed ${ring}` : `no ring ${ring}`);
    return EXIT.ok;
  },
});
