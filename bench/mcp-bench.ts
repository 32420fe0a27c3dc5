/**
 * The MCP endpoint's speed (docs/mcp.md), measured with the official MCP client
 * (@modelcontextprotocol/sdk: `Client` + `StreamableHTTPClientTransport`) against the bus, next to
 * the plain HTTP route each tool calls, on the same bus in the same run.
 *
 *   node bench/mcp-bench.ts --bus [--quick]                             # starts the bus (auth on)
 *   DOVETAIL_TOKEN=... node bench/mcp-bench.ts --url http://127.0.0.1:8787 [--quick]
 *
 * Figures (100-byte JSON messages, one call at a time unless said):
 * - firstConnectMs: the first MCP client's connect() (initialize, initialized, the refused GET) once
 *   the gateway isolate answered a /v1 request: the MCP SDK is loaded by its first request
 *   (workers/routes/mcp.ts); secondConnectMs: the same for a second client; warmListP50Ms: tools/list.
 * - mcpPublishP50Ms / P99: `publish` tool calls; httpPublishP50Ms / P99: `POST .../messages`.
 * - mcpReadP50Ms / P99: `read_topic` with `last: 10`; httpReadP50Ms / P99: `GET .../messages`.
 * - mcpPublishPerSec: `publish` calls per second with CONCURRENCY callers on one client;
 *   httpPublishPerSec: the same with `POST .../messages`.
 * The last stdout line is one JSON object with these figures.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startBus, type BusProcess } from "../test/support/bus-process.ts";

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes("--quick");
const CALLS = quick ? 300 : 3_000;
const RATE_CALLS = quick ? 1_000 : 10_000;
const CONCURRENCY = 16;
const WARM_UP = 50;
const MESSAGE_BYTES = 100;
const UNLIMITED = Object.fromEntries(
  ["requestsPerSecond", "burst", "framesPerSecond", "frameBurst", "bytesPerSecond", "byteBurst", "topicMessagesPerSecond", "topicMessageBurst"].map((k) => [
    k,
    1e9,
  ]),
);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const round = (n: number) => Math.round(n * 1000) / 1000;

/** p50 and p99 (ms) of `count` sequential runs of `fn`, after a warm-up. */
async function timed(count: number, fn: (i: number) => Promise<void>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < WARM_UP; i++) await fn(-1 - i);
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await fn(i);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { p50: round(percentile(ms, 50)), p99: round(percentile(ms, 99)) };
}

/** Calls per second of RATE_CALLS runs of `fn`, CONCURRENCY at a time. */
async function rate(fn: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < RATE_CALLS) await fn(next++);
    }),
  );
  return Math.round(RATE_CALLS / ((performance.now() - started) / 1000));
}

function data(i: number): { i: number; pad: string } {
  const pad = MESSAGE_BYTES - `{"i":${i},"pad":""}`.length;
  return { i, pad: "x".repeat(Math.max(0, pad)) };
}

async function main(): Promise<void> {
  let bus: BusProcess | null = null;
  let url = option("--url");
  let token = process.env.DOVETAIL_TOKEN;
  if (args.includes("--bus")) {
    bus = await startBus({ auth: true });
    url = bus.url;
    token = bus.token;
  }
  if (!url || !token) throw new Error("give --bus, or --url with DOVETAIL_TOKEN set");
  // An API key with limits the bench does not reach (the token's own limits would answer 429):
  // auth stays on the path, as deployed.
  const created = await fetch(`${url}/v1/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "mcp-bench", scopes: ["publish:bench.>", "subscribe:bench.>"], rate: UNLIMITED, expiresInMs: 3_600_000 }),
  });
  if (created.status !== 201) throw new Error(`creating the bench key: ${created.status} ${await created.text()}`);
  const headers = { Authorization: `Bearer ${((await created.json()) as { key: string }).key}` };
  try {
    await (await fetch(`${url}/v1/topics?prefix=bench.`, { headers })).arrayBuffer(); // the gateway isolate is up
    /** connect() = initialize, the initialized notification and the refused GET stream: 3 requests. */
    const connected = async () => {
      const client = new Client({ name: "mcp-bench", version: "0" });
      const t = performance.now();
      await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers } }));
      return { client, ms: performance.now() - t };
    };
    const first = await connected(); // loads the MCP SDK in the isolate, unless an earlier /mcp request did
    const second = await connected();
    await second.client.close();
    const client = first.client;
    const warmList = await timed(CALLS, async () => {
      await client.listTools();
    });

    const topic = `bench.mcp.${Date.now()}`;
    const mcpPublish = await timed(CALLS, async (i) => {
      const r = await client.callTool({ name: "publish", arguments: { topic, data: data(i) } });
      if (r.isError) throw new Error(`publish refused: ${JSON.stringify(r.structuredContent)}`);
    });
    const httpTopic = `${topic}.http`;
    const httpPublish = await timed(CALLS, async (i) => {
      const res = await fetch(`${url}/v1/topics/${httpTopic}/messages`, {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
        body: JSON.stringify({ data: data(i) }),
      });
      if (res.status !== 201) throw new Error(`HTTP publish: ${res.status}`);
      await res.arrayBuffer();
    });
    const mcpRead = await timed(CALLS, async () => {
      const r = await client.callTool({ name: "read_topic", arguments: { topic, last: 10 } });
      if (r.isError) throw new Error(`read refused: ${JSON.stringify(r.structuredContent)}`);
    });
    const httpRead = await timed(CALLS, async () => {
      const res = await fetch(`${url}/v1/topics/${httpTopic}/messages?from=0&limit=10`, { headers });
      if (res.status !== 200) throw new Error(`HTTP read: ${res.status}`);
      await res.arrayBuffer();
    });

    const mcpPublishPerSec = await rate(async (i) => {
      const r = await client.callTool({ name: "publish", arguments: { topic: `${topic}.rate`, data: data(i) } });
      if (r.isError) throw new Error(`publish refused: ${JSON.stringify(r.structuredContent)}`);
    });
    const httpPublishPerSec = await rate(async (i) => {
      const res = await fetch(`${url}/v1/topics/${httpTopic}.rate/messages`, {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json" },
        body: JSON.stringify({ data: data(i) }),
      });
      if (res.status !== 201) throw new Error(`HTTP publish: ${res.status}`);
      await res.arrayBuffer();
    });
    await client.close();

    console.log(
      JSON.stringify({
        quick,
        calls: CALLS,
        firstConnectMs: round(first.ms),
        secondConnectMs: round(second.ms),
        warmListP50Ms: warmList.p50,
        mcpPublishP50Ms: mcpPublish.p50,
        mcpPublishP99Ms: mcpPublish.p99,
        httpPublishP50Ms: httpPublish.p50,
        httpPublishP99Ms: httpPublish.p99,
        mcpReadP50Ms: mcpRead.p50,
        mcpReadP99Ms: mcpRead.p99,
        httpReadP50Ms: httpRead.p50,
        httpReadP99Ms: httpRead.p99,
        mcpPublishPerSec,
        httpPublishPerSec,
        concurrency: CONCURRENCY,
      }),
    );
  } finally {
    await bus?.stop();
  }
}

await main();
