#!/usr/bin/env node
/**
 * dovetail-local: run relays and look at rings on this host.
 *
 *   dovetail-local stat <ring> [--json]
 *   dovetail-local relay <ring> [--port 7400] [--host 127.0.0.1] [--publish]
 *   dovetail-local create <ring> [--capacity 1048576] [--consumers 8] [--crc] [--staleness-ms 5000]
 *   dovetail-local tail <ring> [--count N]
 *   dovetail-local unlink <ring>
 *   dovetail-local bridge <ring> <topic> --direction edge-to-local|local-to-edge [--url U] [--token T]
 *                  [--format bytes|json] [--from F] [--max-batch N] [--capacity N] [--consumers N]
 *
 * `bridge` runs until SIGINT/SIGTERM and prints one JSON line per event on stdout
 * (`{"event":"resume",...}`, `{"event":"gap",...}`, `{"event":"stopped","stats":{...}}`).
 * Exit codes: 0 stopped by a signal, 1 the ring, bridge or edge failed, 2 usage error.
 */
import { parseArgs } from "node:util";
import { DovetailError } from "@dovetail/sdk";
import { bridge, BridgeError, Ring, RingError, type BridgeOptions, type RingStat } from "../src/index.ts";
import { RelayServer } from "../src/relay.ts";

const USAGE = `usage:
  dovetail-local stat <ring> [--json]
  dovetail-local relay <ring> [--port 7400] [--host 127.0.0.1] [--publish]
  dovetail-local create <ring> [--capacity 1048576] [--consumers 8] [--crc] [--staleness-ms 5000]
  dovetail-local tail <ring> [--count N]
  dovetail-local unlink <ring>
  dovetail-local bridge <ring> <topic> --direction edge-to-local|local-to-edge
                 [--url http://127.0.0.1:8787] [--token T] [--format bytes|json]
                 [--from earliest|latest|N (edge-to-local) | oldest|head (local-to-edge)]
                 [--max-batch 256] [--capacity N] [--consumers N] [--source NAME]
    (--url defaults to $DOVETAIL_URL, --token to $DOVETAIL_TOKEN; see local-node/README.md, "Bridge")`;

function parseFrom(raw: string | undefined): BridgeOptions["from"] {
  if (raw === undefined) return undefined;
  if (/^\d+$/.test(raw)) return Number(raw);
  return raw as BridgeOptions["from"]; // checked by bridge()
}

async function runBridge(ring: string | undefined, topic: string | undefined, values: Record<string, string | boolean | undefined>): Promise<number> {
  const direction = values.direction;
  if (ring === undefined || topic === undefined || typeof direction !== "string") {
    console.error(`dovetail-local bridge: needs <ring> <topic> --direction edge-to-local|local-to-edge\n${USAGE}`);
    return 2;
  }
  const str = (name: string): string | undefined => (typeof values[name] === "string" ? (values[name] as string) : undefined);
  const num = (name: string): number | undefined => (str(name) === undefined ? undefined : Number(str(name)));
  const ringOptions: NonNullable<BridgeOptions["ringOptions"]> = {};
  if (num("capacity") !== undefined) ringOptions.capacity = num("capacity")!;
  if (num("consumers") !== undefined) ringOptions.maxConsumers = num("consumers")!;
  const print = (line: Record<string, unknown>): void => void process.stdout.write(`${JSON.stringify(line)}\n`);
  let b: ReturnType<typeof bridge>;
  try {
    b = bridge({
      ring,
      topic,
      direction: direction as BridgeOptions["direction"],
      url: str("url"),
      token: str("token"),
      format: str("format") as BridgeOptions["format"],
      from: parseFrom(str("from")),
      maxBatch: num("max-batch"),
      source: str("source"),
      ringOptions,
      onEvent: (e) => {
        const { type, ...rest } = e;
        if (type !== "stopped") print({ event: type, ...rest });
      },
    });
  } catch (error) {
    if (error instanceof BridgeError && error.code === "BRIDGE_INVALID") {
      console.error(`dovetail-local bridge: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const stop = (): void => void b.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await b.done;
    print({ event: "stopped", stats: b.stats });
    return 0;
  } catch (error) {
    print({ event: "stopped", stats: b.stats, error: (error as Error).message });
    throw error;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

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
      direction: { type: "string" },
      url: { type: "string" },
      token: { type: "string" },
      format: { type: "string" },
      from: { type: "string" },
      "max-batch": { type: "string" },
      source: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ring] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command === "bridge") return runBridge(ring, positionals[2], values);
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
  if (error instanceof RingError || error instanceof BridgeError || error instanceof DovetailError) {
    console.error(`dovetail-local: ${error.code}: ${error.message}`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
