/**
 * A local ring forwarded to an edge topic, and the topic mirrored back into another local ring.
 * Needs a running bus (`npm run dev`):
 *
 *   DOVETAIL_URL=http://127.0.0.1:8787 node local-node/examples/bridge-basic.ts
 */
import { bridge, decodeEdgeRecord, Ring, unlinkBridgeFiles } from "@dovetail/local-node";

const url = process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787";
const topic = `examples.bridge.${process.pid}.${Date.now().toString(36)}`;
const outName = `example-out-${process.pid}`; // local agents publish here
const inName = `example-in-${process.pid}`; // the edge topic arrives here

const out = Ring.create(outName, { capacity: 1 << 20 });
Ring.create(inName, { capacity: 1 << 20 }).close(); // the edge-to-local bridge adopts it as producer
const inbound = Ring.open(inName); // attach before the bridge writes, to see every record

const up = bridge({ ring: outName, topic, direction: "local-to-edge", url }); // ring -> edge
const down = bridge({ ring: inName, topic, direction: "edge-to-local", url }); // edge -> ring
await Promise.all([up.ready, down.ready]);

out.publish(new TextEncoder().encode("hello"));
out.publish(new TextEncoder().encode("world"));

const seen: string[] = [];
const deadline = Date.now() + 30_000; // never hang
while (seen.length < 2 && Date.now() < deadline) {
  for (const rec of inbound.pollBatch(16)) {
    const e = decodeEdgeRecord(rec); // { edgeOffset, payload, json }
    if (e) seen.push(`${e.edgeOffset}:${new TextDecoder().decode(e.payload)}`);
  }
  if (seen.length < 2) await inbound.waitAsync(100);
}
console.log(seen.join(" "));

await up.close();
await down.close();
inbound.close();
out.close();
for (const name of [outName, inName]) {
  Ring.unlink(name);
  unlinkBridgeFiles(name, [topic]);
}
