/**
 * Runs the Durable Streams reference server (@durable-streams/server), file-backed, in its own
 * process for the benchmarks: `node bench/lib/ds-server.ts PORT DATA_DIR`.
 */
import { DurableStreamTestServer } from "@durable-streams/server";

const [port, dataDir] = process.argv.slice(2);
const server = new DurableStreamTestServer({ port: Number(port), host: "127.0.0.1", dataDir });
await server.start();
console.log(`durable-streams reference server on http://127.0.0.1:${port}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void server.stop().finally(() => process.exit(0));
  });
}
