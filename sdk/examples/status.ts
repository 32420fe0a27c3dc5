/**
 * Watch connection events while publishing, and handle typed errors.
 * Run: DOVETAIL_URL=http://127.0.0.1:8787 node sdk/examples/status.ts [topic]
 */
import { connect, DovetailError } from "../src/index.ts";

const bus = connect(process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787", { token: process.env.DOVETAIL_TOKEN });
const topic = process.argv[2] ?? "examples.status";

const watching = (async () => {
  for await (const event of bus.status()) console.log("status:", event.type, "topic" in event ? event.topic : "");
})();

await bus.publish(topic, { ok: true });
try {
  await bus.publish(topic, "x".repeat(2 * 1024 * 1024)); // over the topic's 1 MiB message limit
} catch (error) {
  if (error instanceof DovetailError) console.log(`refused: ${error.code}`);
  else throw error;
}
const info = await bus.info(topic);
console.log(`head ${info.head}, ${info.messages} message(s)`);
await bus.close();
await watching;
