/**
 * The responders of the request-reply scenario (bench/lib/request-reply.ts), in a process of
 * their own: `n` responders, each on its own connection, in one queue group / serving group,
 * answering every request with its own data. Tells its parent `ready` (IPC) once all of them
 * serve, then runs until killed.
 *
 * Usage (forked): request-reply-responders.ts <dovetail|nats> <url> <topic> <n>
 */
import { connect as natsConnect } from "@nats-io/transport-node";

const [system, url, topic, count] = process.argv.slice(2) as [string, string, string, string];
const n = Number(count);

if (system === "dovetail") {
  const { connect } = await import("../../sdk/src/index.ts");
  await Promise.all(
    Array.from({ length: n }, async () => {
      const bus = connect(url);
      await bus.serve(topic, (data) => data, { group: "svc" });
    }),
  );
} else {
  await Promise.all(
    Array.from({ length: n }, async () => {
      const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, "") });
      nc.subscribe(topic, {
        queue: "svc",
        callback: (_err, msg) => {
          msg.respond(msg.data);
        },
      });
      await nc.flush();
    }),
  );
}
process.send?.("ready");
