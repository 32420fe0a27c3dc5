/**
 * Read a topic from the beginning as an async iterator, then stop after `count` messages.
 * Run: DOVETAIL_URL=http://127.0.0.1:8787 node sdk/examples/subscribe.ts [topic] [count]
 */
import { connect } from "../src/index.ts";

const bus = connect(process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
const topic = process.argv[2] ?? "examples.events";
const count = Number(process.argv[3] ?? 10);

let seen = 0;
for await (const msg of bus.subscribe(topic, { from: "earliest" })) {
  console.log(msg.offset, JSON.stringify(msg.data), msg.key ?? "", JSON.stringify(msg.headers));
  if (++seen >= count) break; // leaving the loop ends the subscription
}
await bus.close();
