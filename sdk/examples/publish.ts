/**
 * Publish one message and wait for its offset; then publish a batch with a Publisher.
 * Run: DOVETAIL_URL=http://127.0.0.1:8787 node sdk/examples/publish.ts [topic]
 */
import { connect } from "../src/index.ts";

const bus = connect(process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
const topic = process.argv[2] ?? "examples.events";

// One message, confirmed once the topic has stored it.
const { offset } = await bus.publish(topic, { hello: "world" }, { key: "agent-1", headers: { kind: "greeting" } });
console.log(`stored at offset ${offset}`);

// Many messages: batched under the hood (linger 5 ms, up to 500 per frame), each with its offset.
const pub = bus.publisher(topic, { lingerMs: 5, maxBatch: 500, maxInFlight: 8 });
const offsets = await Promise.all(Array.from({ length: 1000 }, (_, n) => pub.send({ n })));
await pub.flush();
console.log(`batch stored at offsets ${offsets[0]}..${offsets.at(-1)}`);

await bus.close();
