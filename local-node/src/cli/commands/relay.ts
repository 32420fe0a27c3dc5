/** `dovetail-local relay <ring>`: serve a ring to TCP clients until SIGINT/SIGTERM. */
import { Ring } from "../../index.ts";
import { RelayServer } from "../../relay.ts";
import { defineCommand, EXIT, optionalInteger } from "../command.ts";

const DEFAULT_PORT = 7400;

export const relay = defineCommand({
  name: "relay",
  args: ["<ring>"],
  summary: "serve a ring to TCP clients",
  description: `Drains the ring and sends every record to each connected client; clients that reconnect resume
where they left off. Logs one JSON line per event on stderr, starting with the address it
listens on. Runs until SIGINT or SIGTERM (exit 0).`,
  options: {
    port: { type: "string", value: "PORT", help: `TCP port (default ${DEFAULT_PORT}; 0 picks a free one)` },
    host: { type: "string", value: "HOST", help: "address to listen on (default 127.0.0.1)" },
    publish: { type: "boolean", help: "let clients publish into the ring (the relay becomes its producer)" },
  },
  async run({ values, positionals }) {
    const ring = positionals[0]!;
    const port = optionalInteger(values.port, "--port", { max: 65535 }) ?? DEFAULT_PORT;
    const writer = values.publish ? Ring.create(ring) : undefined;
    const server = await RelayServer.listen({
      ring,
      writer,
      host: values.host ?? "127.0.0.1",
      port,
      onEvent: (e) => console.error(`[relay] ${JSON.stringify(e)}`),
    });
    console.error(`[relay] ring ${ring} on ${server.host}:${server.port}${writer ? " (remote publish on)" : ""}`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    await server.close();
    writer?.close();
    console.error(`[relay] stopped: ${JSON.stringify(server.stats)}`);
    return EXIT.ok;
  },
});
