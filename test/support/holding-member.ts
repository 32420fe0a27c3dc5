/**
 * A consumer-group member in its own process that takes jobs and never settles them, printing
 * each job's offset as a line: the test kills it with SIGKILL while it holds them.
 *
 * Usage: node test/support/holding-member.ts <url> <token> <topic> <group> <maxAckPending>
 */
import { connect } from "../../sdk/src/index.ts";

const [url, token, topic, group, max] = process.argv.slice(2) as [string, string, string, string, string];
const bus = connect(url, { token });
for await (const job of bus.consume(topic, group, { maxAckPending: Number(max) })) {
  process.stdout.write(`${job.offset}\n`);
}
