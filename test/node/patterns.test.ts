/**
 * Pattern subscriptions through the SDK against the real bus process (docs/patterns.md):
 * - a proxy that cuts connections at random points while several topics (some created after the
 *   subscription started) are published to: each topic's messages arrive once, in order;
 * - the bus killed (-9) and restarted mid-stream: each topic resumes at its cursor;
 * - a narrow credential's pattern matches only what it may read, and the CLI follows a pattern.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Bus, type PatternMessage, type PatternSubscription } from "../../sdk/src/index.ts";
import { startCuttingProxy } from "../../sdk/test/support/cutting-proxy.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const FAST_RECONNECT = { initialDelayMs: 10, maxDelayMs: 300 };
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let counter = 0;
function freshRoot(): string {
  counter += 1;
  return `pat.${Date.now().toString(36)}.${counter}.${Math.random().toString(36).slice(2, 8)}`;
}

/** Take `count` messages, grouped by topic; fails after `timeoutMs` saying what did arrive. */
async function take(sub: PatternSubscription, count: number, timeoutMs = 60_000): Promise<Map<string, PatternMessage[]>> {
  const byTopic = new Map<string, PatternMessage[]>();
  let n = 0;
  const taking = (async () => {
    for await (const m of sub) {
      const list = byTopic.get(m.topic) ?? [];
      list.push(m);
      byTopic.set(m.topic, list);
      if (++n >= count) break;
    }
    return byTopic;
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const seen = [...byTopic].map(([t, ms]) => `${t}: ${ms.length} (last offset ${ms[ms.length - 1]?.offset})`).join(", ");
      reject(new Error(`${n} of ${count} messages after ${timeoutMs} ms: ${seen}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([taking, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Per topic: offsets 0..n-1 exactly once, in order, each with its payload. */
function expectExactlyOnce(byTopic: Map<string, PatternMessage[]>, expected: Record<string, number>): void {
  expect([...byTopic.keys()].sort()).toEqual(Object.keys(expected).sort());
  for (const [topic, count] of Object.entries(expected)) {
    const got = byTopic.get(topic)!;
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(got.every((m, i) => (m.data as { n: number }).n === i)).toBe(true);
  }
}

async function publishAll(bus: Bus, topic: string, count: number): Promise<void> {
  const pub = bus.publisher(topic, { lingerMs: 2, maxBatch: 50 });
  for (let n = 0; n < count; n++) {
    await pub.ready();
    void pub.send({ n });
    if (n % 20 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  await pub.flush();
}

describe("pattern subscriptions through the SDK", () => {
  let server: BusProcess;
  beforeAll(async () => {
    server = await startBus({ auth: true });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("delivers each topic once and in order while a proxy cuts connections, topics created later included", async () => {
    const seed = Number(process.env.DOVETAIL_FAULT_SEED ?? Date.now() % 1_000_000);
    console.log(`cutting proxy seed ${seed} (replay with DOVETAIL_FAULT_SEED=${seed})`);
    const proxy = await startCuttingProxy({ targetPort: server.port, seed, minBytes: 200, maxBytes: 60_000, tickMs: 50, cutProbability: 0.1 });
    const root = freshRoot();
    const publisher = connect(server.url, { token: server.token });
    const subscriber = connect(`http://127.0.0.1:${proxy.port}`, { token: server.token, reconnect: FAST_RECONNECT, pingIntervalMs: 1000 });
    const PER_TOPIC = 1500;
    try {
      await publisher.publish(`${root}.a.events`, { n: 0 });
      const sub = subscriber.subscribe(`${root}.*.events`, { from: "earliest", buffer: 200 });
      const received = take(sub, 3 * PER_TOPIC);
      // One topic existed before; two are created while the subscription runs.
      await Promise.all([
        (async () => {
          const pub = publisher.publisher(`${root}.a.events`, { lingerMs: 2, maxBatch: 50 });
          for (let n = 1; n < PER_TOPIC; n++) {
            await pub.ready();
            void pub.send({ n });
            if (n % 20 === 0) await new Promise((r) => setTimeout(r, 1));
          }
          await pub.flush();
        })(),
        publishAll(publisher, `${root}.b.events`, PER_TOPIC),
        publishAll(publisher, `${root}.c.events`, PER_TOPIC),
        publishAll(publisher, `${root}.c.logs`, 10),
      ]);
      const byTopic = await received;
      expectExactlyOnce(byTopic, { [`${root}.a.events`]: PER_TOPIC, [`${root}.b.events`]: PER_TOPIC, [`${root}.c.events`]: PER_TOPIC });
      expect(proxy.cuts).toBeGreaterThanOrEqual(3);
      console.log(`proxy cut ${proxy.cuts} connections of ${proxy.connections}`);
    } finally {
      await publisher.close({ force: true });
      await subscriber.close({ force: true });
      await proxy.close();
    }
  });

  it("resumes every topic at its cursor when the bus is killed and restarted", async () => {
    const root = freshRoot();
    const publisher = connect(server.url, { token: server.token, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    const subscriber = connect(server.url, { token: server.token, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, pingIntervalMs: 1000 });
    try {
      // Earliest (the root is new): with latest, a message published before the subscription runs
      // on the bus would not be delivered, and `subscribe()` returns before it runs.
      const sub = subscriber.subscribe(`${root}.>`, { from: "earliest", buffer: 100 });
      await publisher.publish(`${root}.x`, { n: 0 });
      const first = await sub.next();
      expect(first.value).toMatchObject({ topic: `${root}.x`, offset: 0 });
      const rest = take(sub, 2 * 200 - 1);
      // x: offsets 1..99 before the restart, 100..199 after it; y: created after it.
      const before = publisher.publisher(`${root}.x`);
      for (let n = 1; n < 100; n++) void before.send({ n });
      await before.flush();
      await server.restart();
      const after = publisher.publisher(`${root}.x`);
      for (let n = 100; n < 200; n++) void after.send({ n });
      await after.flush();
      await publishAll(publisher, `${root}.y`, 200);
      const byTopic = await rest;
      byTopic.get(`${root}.x`)!.unshift(first.value as PatternMessage);
      expectExactlyOnce(byTopic, { [`${root}.x`]: 200, [`${root}.y`]: 200 });
    } finally {
      await publisher.close({ force: true });
      await subscriber.close({ force: true });
    }
  });

  it("matches only the topics a narrow key may read, and the CLI follows a pattern", async () => {
    const root = freshRoot();
    const admin = connect(server.url, { token: server.token });
    const created = (await (
      await fetch(`${server.url}/v1/admin/keys`, {
        method: "POST",
        headers: { Authorization: `Bearer ${server.token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ name: "narrow", scopes: [`subscribe:${root}.open.*`] }),
      })
    ).json()) as { key: string };
    const narrow = connect(server.url, { token: created.key });
    try {
      const sub = narrow.subscribe(`${root}.>`, { from: "earliest" });
      await admin.publish(`${root}.secret.a`, { n: 0 });
      await admin.publish(`${root}.open.a`, { n: 0 });
      await admin.publish(`${root}.open.b`, { n: 0 });
      const byTopic = await take(sub, 2);
      expect([...byTopic.keys()].sort()).toEqual([`${root}.open.a`, `${root}.open.b`]);

      // The CLI: `dovetail sub <pattern> --from earliest --limit 2 --json` prints each message with its topic.
      const { stdout } = await promisify(execFile)(
        path.join(ROOT, "node_modules/node/bin/node"),
        [path.join(ROOT, "sdk/bin/dovetail.ts"), "sub", `${root}.open.*`, "--from", "earliest", "--limit", "2", "--json"],
        { env: { ...process.env, DOVETAIL_URL: server.url, DOVETAIL_TOKEN: created.key }, timeout: 30_000 },
      );
      const lines = stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { topic: string; offset: number });
      expect(lines.map((l) => l.topic).sort()).toEqual([`${root}.open.a`, `${root}.open.b`]);
    } finally {
      await admin.close({ force: true });
      await narrow.close({ force: true });
    }
  });
});
