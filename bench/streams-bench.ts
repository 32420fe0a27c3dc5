/**
 * Durable Streams speed, measured with the official client (@durable-streams/client) against any
 * server that speaks the protocol under `{url}/v1/stream/…`: the Dovetail bus or the reference
 * server (@durable-streams/server).
 *
 *   node bench/streams-bench.ts --url http://127.0.0.1:8787 [--quick]
 *   node bench/streams-bench.ts --reference [--quick]   # starts the reference server in-process
 *   node bench/streams-bench.ts --bus [--quick]         # starts the bus (scripts/dev.mjs, auth off)
 *
 * Figures (100-byte JSON messages):
 * - producerMsgPerSec: IdempotentProducer batched writes, first append to flush() resolved.
 * - appendP50Ms / appendP99Ms: one `DurableStream.append()` at a time, round trip.
 * - longPollP50Ms / longPollP99Ms: append, until a reader already waiting in long-poll has it.
 * The last stdout line is one JSON object with these figures.
 */
import { DurableStream, IdempotentProducer } from "@durable-streams/client";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = flag("--quick");
const PRODUCER_MESSAGES = quick ? 50_000 : 500_000;
const APPENDS = quick ? 300 : 3_000;
const LONG_POLLS = quick ? 200 : 2_000;
const MESSAGE_BYTES = 100;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** A JSON message of exactly MESSAGE_BYTES bytes. */
function message(i: number): string {
  const head = `{"i":${i},"pad":"`;
  return `${head}${"x".repeat(MESSAGE_BYTES - head.length - 2)}"}`;
}

async function fresh(base: string, label: string): Promise<DurableStream> {
  const url = `${base}/v1/stream/bench-${label}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  return DurableStream.create({ url, contentType: "application/json" });
}

async function producerRate(base: string): Promise<number> {
  const stream = await fresh(base, "producer");
  let failed: Error | null = null;
  const producer = new IdempotentProducer(stream, `bench-${Date.now()}`, { onError: (e) => (failed = e) });
  const started = performance.now();
  for (let i = 0; i < PRODUCER_MESSAGES; i++) producer.append(message(i));
  await producer.flush();
  const seconds = (performance.now() - started) / 1000;
  await producer.detach();
  if (failed) throw failed;
  return PRODUCER_MESSAGES / seconds;
}

async function appendLatency(base: string): Promise<number[]> {
  const stream = await fresh(base, "append");
  const samples: number[] = [];
  for (let i = 0; i < APPENDS; i++) {
    const t0 = performance.now();
    await stream.append(message(i));
    samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b);
}

async function longPollLatency(base: string): Promise<number[]> {
  const writer = await fresh(base, "longpoll");
  const samples: number[] = [];
  const res = await writer.stream<{ i: number }>({ offset: "now", live: "long-poll" });
  // cancel() below ends the reader; its `closed` promise may reject then, which is expected.
  res.closed.catch(() => {});
  let waiting: ((i: number) => void) | null = null;
  res.subscribeJson(async (batch) => {
    for (const item of batch.items) waiting?.(item.i);
  });
  for (let i = 0; i < LONG_POLLS; i++) {
    // Give the reader time to be back in its long-poll before the next append.
    await new Promise((r) => setTimeout(r, 2));
    const got = new Promise<void>((resolve) => {
      waiting = (n) => {
        if (n === i) resolve();
      };
    });
    const t0 = performance.now();
    await writer.append(message(i));
    await got;
    samples.push(performance.now() - t0);
  }
  res.cancel();
  return samples.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  let url = option("--url");
  let stop = async () => {};
  if (flag("--reference")) {
    const { DurableStreamTestServer } = await import("@durable-streams/server");
    const server = new DurableStreamTestServer({ port: 0, host: "127.0.0.1" });
    url = await server.start();
    stop = () => server.stop();
  } else if (flag("--bus")) {
    const { startBus } = await import("../test/support/bus-process.ts");
    const bus = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
    url = bus.url;
    stop = () => bus.stop();
  }
  if (!url) throw new Error("give --url URL, --reference or --bus");
  url = url.replace(/\/+$/, "");
  try {
    const rate = await producerRate(url);
    console.error(`producer: ${Math.round(rate)} msg/s`);
    const appends = await appendLatency(url);
    console.error(`append: p50 ${round(percentile(appends, 50))} ms, p99 ${round(percentile(appends, 99))} ms`);
    const polls = await longPollLatency(url);
    console.error(`long-poll: p50 ${round(percentile(polls, 50))} ms, p99 ${round(percentile(polls, 99))} ms`);
    console.log(
      JSON.stringify({
        target: url,
        quick,
        messageBytes: MESSAGE_BYTES,
        producerMessages: PRODUCER_MESSAGES,
        producerMsgPerSec: Math.round(rate),
        appendP50Ms: round(percentile(appends, 50)),
        appendP99Ms: round(percentile(appends, 99)),
        longPollP50Ms: round(percentile(polls, 50)),
        longPollP99Ms: round(percentile(polls, 99)),
      }),
    );
  } finally {
    await stop();
  }
}

await main();
