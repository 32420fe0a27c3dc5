#!/usr/bin/env node
/**
 * dovetail-local: run relays and look at rings on this host.
 *
 *   dovetail-local stat <ring> [--json]
 *   dovetail-local relay <ring> [--port 7400] [--host 127.0.0.1] [--publish]
 *   dovetail-local create <ring> [--capacity 1048576] [--consumers 8] [--crc] [--staleness-ms 5000]
 *   dovetail-local tail <ring> [--count N]
 *   dovetail-local unlink <ring>
 *
 * `bridge` (ring <-> edge topic) needs the @dovetail/sdk client and is not available yet.
 */
import { parseArgs } from "node:util";
import { Ring, RingError, type RingStat } from "../src/index.ts";
import { RelayServer } from "../src/relay.ts";

const USAGE = `usage:
  dovetail-local stat <ring> [--json]
  dovetail-local relay <ring> [--port 7400] [--host 127.0.0.1] [--publish]
  dovetail-local create <ring> [--capacity 1048576] [--consumers 8] [--crc] [--staleness-ms 5000]
  dovetail-local tail <ring> [--count N]
  dovetail-local unlink <ring>
  (bridge: not available yet, it needs the @dovetail/sdk edge client)`;

function formatStat(s: RingStat): string {
  const lines = [
    `ring ${s.name} (${s.path})`,
    `  layout v${s.version}, capacity ${s.capacity} bytes, ${s.maxConsumers} consumer slots, crc ${s.crc ? "on" : "off"}, staleness ${s.stalenessMs} ms`,
    `  head ${s.head}, producer ${s.producerPid === 0 ? "none" : `pid ${s.producerPid} (${s.producerAlive ? "alive" : "dead"})`}, ${s.waitingConsumers} asleep on the doorbell`,
    `  slot  state     pid      alive  tail            lag bytes   heartbeat age  stale`,
  ];
  for (const c of s.consumers) {
    lines.push(
      `  ${String(c.slot).padEnd(5)} ${c.state.padEnd(9)} ${String(c.pid).padEnd(8)} ${String(c.alive).padEnd(6)} ${String(c.tail).padEnd(15)} ${String(c.lagBytes).padEnd(11)} ${`${c.heartbeatAgeMs} ms`.padEnd(14)} ${c.stale}`,
    );
  }
  if (s.consumers.length === 0) lines.push("  (no consumers)");
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      port: { type: "string" },
      host: { type: "string" },
      publish: { type: "boolean" },
      capacity: { type: "string" },
      consumers: { type: "string" },
      crc: { type: "boolean" },
      "staleness-ms": { type: "string" },
      count: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ring] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command === "bridge") {
    console.error("dovetail-local bridge: not available yet; it needs the @dovetail/sdk edge client (see local-node/README.md)");
    return 2;
  }
  if (ring === undefined) {
    console.error(USAGE);
    return 2;
  }
  switch (command) {
    case "stat": {
      const s = Ring.stat(ring);
      console.log(values.json ? JSON.stringify(s, null, 2) : formatStat(s));
      return 0;
    }
    case "create": {
      const w = Ring.create(ring, {
        capacity: values.capacity ? Number(values.capacity) : undefined,
        maxConsumers: values.consumers ? Number(values.consumers) : undefined,
        crc: values.crc ?? undefined,
        stalenessMs: values["staleness-ms"] ? Number(values["staleness-ms"]) : undefined,
      });
      w.close();
      console.log(formatStat(Ring.stat(ring)));
      return 0;
    }
    case "unlink":
      console.log(Ring.unlink(ring) ? `removed ${ring}` : `no ring ${ring}`);
      return 0;
    case "tail": {
      const r = Ring.open(ring);
      const limit = values.count ? Number(values.count) : Number.POSITIVE_INFINITY;
      let shown = 0;
      const stop = (): void => r.close();
      process.once("SIGINT", stop);
      for await (const rec of r) {
        const preview = Buffer.from(rec.data.subarray(0, 32)).toString("hex");
        console.log(`${rec.offset}\ttype ${rec.type}\t${rec.data.length} B\t${rec.lost ? `(lost ${rec.lost} B before) ` : ""}${preview}`);
        if (++shown >= limit) break;
      }
      r.close();
      return 0;
    }
    case "relay": {
      const writer = values.publish ? Ring.create(ring) : undefined;
      const server = await RelayServer.listen({
        ring,
        writer,
        host: values.host ?? "127.0.0.1",
        port: values.port ? Number(values.port) : 7400,
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
      return 0;
    }
    default:
      console.error(`unknown command ${command}\n${USAGE}`);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof RingError) {
    console.error(`dovetail-local: ${error.code}: ${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
