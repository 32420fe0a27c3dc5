/**
 * A responder in its own process that takes requests and never answers them, printing
 * `request <data as JSON>` for each one it gets (and `ready` once it serves): the test kills it
 * with SIGKILL while it holds a request.
 *
 * Usage: node test/support/holding-responder.ts <url> <token> <topic> <group> <durable: 0|1>
 */
import { connect } from "../../sdk/src/index.ts";

const [url, token, topic, group, durable] = process.argv.slice(2) as [string, string, string, string, string];
const bus = connect(url, { token });
const server = await bus.serve(
  topic,
  (data) => {
    process.stdout.write(`request ${JSON.stringify(data)}\n`);
    return new Promise<never>(() => undefined); // holds it until killed
  },
  { group, durable: durable === "1" },
);
process.stdout.write("ready\n");
await server.done;
