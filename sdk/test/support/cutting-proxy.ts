/**
 * A TCP proxy for fault tests: forwards 127.0.0.1:<port> to the bus and cuts connections at
 * random points, including in the middle of a WebSocket frame: each connection gets a random
 * byte budget per direction, and when a chunk would exceed it, only part of the chunk is
 * forwarded before both sides are destroyed. A timer also cuts random live connections.
 *
 * Seeded, so a failing run can be replayed with the same seed (printed by the test).
 */
import net from "node:net";
import { seededRandom } from "../../../test/support/seeded-random.ts";

export { seededRandom };

export interface CuttingProxyOptions {
  /** Target port on 127.0.0.1. */
  targetPort: number;
  seed: number;
  /** Byte budget per connection and direction: uniform in [min, max]. */
  minBytes?: number;
  maxBytes?: number;
  /** Every this many ms, each live connection is cut with probability `cutProbability`. */
  tickMs?: number;
  cutProbability?: number;
}

export interface CuttingProxy {
  port: number;
  /** Connections cut so far. */
  readonly cuts: number;
  readonly connections: number;
  /** Stop cutting (connections then live until closed). */
  calm(): void;
  close(): Promise<void>;
}

export async function startCuttingProxy(options: CuttingProxyOptions): Promise<CuttingProxy> {
  const random = seededRandom(options.seed);
  const minBytes = options.minBytes ?? 2_000;
  const maxBytes = options.maxBytes ?? 400_000;
  let calm = false;
  let cuts = 0;
  let connections = 0;
  const live = new Set<() => void>();

  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(options.targetPort, "127.0.0.1");
    let dead = false;
    let stopped = false;
    const cut = () => {
      if (dead) return;
      dead = true;
      live.delete(cut);
      client.destroy();
      upstream.destroy();
    };
    live.add(cut);
    client.on("error", cut);
    upstream.on("error", cut);
    client.on("close", cut);
    upstream.on("close", cut);
    const pipe = (from: net.Socket, to: net.Socket) => {
      let budget = minBytes + Math.floor(random() * (maxBytes - minBytes));
      from.on("data", (chunk: Buffer) => {
        if (dead || stopped) return;
        if (calm || chunk.length <= budget) {
          budget -= chunk.length;
          to.write(chunk);
          return;
        }
        // Forward part of this chunk, then cut: the peer sees a frame torn in the middle.
        const part = Math.floor(random() * budget);
        if (part > 0) to.write(chunk.subarray(0, part));
        cuts++;
        stopped = true; // no more bytes either way
        setImmediate(cut); // after the partial write is handed to the socket
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });

  const tickMs = options.tickMs ?? 150;
  const p = options.cutProbability ?? 0.2;
  const timer = setInterval(() => {
    if (calm) return;
    for (const cut of [...live]) {
      if (random() < p) {
        cuts++;
        cut();
      }
    }
  }, tickMs);

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get cuts() {
      return cuts;
    },
    get connections() {
      return connections;
    },
    calm() {
      calm = true;
    },
    async close() {
      clearInterval(timer);
      for (const cut of [...live]) cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
