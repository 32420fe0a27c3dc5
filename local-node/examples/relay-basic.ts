/**
 * Ring -> TCP relay -> remote client, and remote publish back into the ring (127.0.0.1 only).
 *
 *   node local-node/examples/relay-basic.ts
 */
import { Ring, RelayClient, RelayServer } from "@dovetail/local-node";

const name = `example-relay-${process.pid}`;
const writer = Ring.create(name, { capacity: 1 << 20 });
const server = await RelayServer.listen({ ring: name, port: 0, writer });

const received: string[] = [];
const client = RelayClient.connect({
  port: server.port,
  onRecord: (data) => received.push(new TextDecoder().decode(data)), // view valid during the call only
});
await client.ready();

writer.publish(new TextEncoder().encode("from the ring"));
await client.publish([new TextEncoder().encode("from the client")]);

const deadline = Date.now() + 10_000; // never hang
while (received.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
console.log(received.join(" | "));

client.close();
await server.close();
writer.close();
Ring.unlink(name);
