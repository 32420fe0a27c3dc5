/**
 * Fault tests: real bus process, real sockets, real failures.
 * - a TCP proxy that cuts connections at random points (mid-frame included) while 10,000
 *   messages flow;
 * - the bus killed (-9) and restarted mid-stream;
 * - a subscriber that stops reading next to one that keeps up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Bus, type Message, type Subscription } from "../../sdk/src/index.ts";
import { startCuttingProxy } from "../../sdk/test/support/cutting-proxy.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

let counter = 0;
function freshTopic(prefix = "fault"): string {
  counter += 1;
  return `${prefix}.${Date.now().toString(36)}.${counter}.${Math.random().toString(36).slice(2, 8)}`;
}

const FAST_RECONNECT = { initialDelayMs: 10, maxDelayMs: 300 };

/** Every stored message of a topic, read over plain HTTP straight from the bus. */
async function readAll(url: string, topic: string): Promise<{ offset: number; data: unknown }[]> {
  const out: { offset: number; data: unknown }[] = [];
  let from = 0;
  for (;;) {
    const res = await fetch(`${url}/v1/topics/${encodeURIComponent(topic)}/messages?from=${from}&limit=1000`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { messages: { offset: number; data: unknown }[]; next: number; head: number };
    out.push(...body.messages);
    if (body.next >= body.head || body.messages.length === 0) return out;
    from = body.next;
  }
}

/** Consume `count` messages, checking order as they come. */
async function collect(sub: Subscription, count: number, seen: Message[] = []): Promise<Message[]> {
  for await (const m of sub) {
    seen.push(m);
    if (seen.length >= count) break;
  }
  return seen;
}

/** Publish n = 0..count-1 with backpressure; resolves with every confirmed offset. */
async function publishNumbered(bus: Bus, topic: string, count: number, pace?: () => Promise<void>): Promise<number[]> {
  const pub = bus.publisher(topic, { lingerMs: 2, maxBatch: 50, maxInFlight: 8, maxQueued: 500 });
  const sends: Promise<number>[] = [];
  for (let n = 0; n < count; n++) {
    await pub.ready();
    const send = pub.send({ n });
    send.catch(() => {});
    sends.push(send);
    if (pace) await pace();
  }
  await pub.flush();
  return Promise.all(sends);
}

/**
 * Every confirmed publish got its own offset, in send order, with no gap; the subscriber saw each
 * offset once, in order, with the payload sent; and the log stores each message once (n = offset).
 */
async function expectExactlyOnce(url: string, offsets: number[], got: Message[], topic: string, count: number): Promise<void> {
  const expected = Array.from({ length: count }, (_, i) => i);
  expect(offsets).toEqual(expected);
  expect(got.map((m) => m.offset)).toEqual(expected);
  expect(got.every((m, i) => (m.data as { n: number }).n === i)).toBe(true);
  const stored = await readAll(url, topic);
  expect(stored.length).toBe(count);
  expect(stored.every((m, i) => m.offset === i && (m.data as { n: number }).n === i)).toBe(true);
}

describe("sdk under faults", () => {
  let server: BusProcess;
  beforeAll(async () => {
    server = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("delivers 10,000 messages exactly once, in order, while a proxy cuts connections at random points", async () => {
    const seed = Number(process.env.DOVETAIL_FAULT_SEED ?? Date.now() % 1_000_000);
    console.log(`cutting proxy seed ${seed} (replay with DOVETAIL_FAULT_SEED=${seed})`);
    // A connection is cut after at most maxBytes: every frame must fit, or it never gets through.
    // The largest is a delivery of `buffer` (300) messages of about 150 bytes each (offset, time,
    // data and the traceparent header the SDK adds, docs/observability.md).
    const proxy = await startCuttingProxy({ targetPort: server.port, seed, minBytes: 200, maxBytes: 60_000, tickMs: 50, cutProbability: 0.1 });
    const viaProxy = `http://127.0.0.1:${proxy.port}`;
    const publisherBus = connect(viaProxy, { reconnect: FAST_RECONNECT, pingIntervalMs: 1000 });
    const subscriberBus = connect(viaProxy, { reconnect: FAST_RECONNECT, pingIntervalMs: 1000 });
    const topic = freshTopic();
    const COUNT = 10_000;
    try {
      const sub = subscriberBus.subscribe(topic, { from: 0, buffer: 300 });
      const received = collect(sub, COUNT);
      // Paced a little so the flow spans many connection lifetimes.
      let sent = 0;
      const offsets = await publishNumbered(publisherBus, topic, COUNT, async () => {
        if (++sent % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      });
      const got = await received;

      await expectExactlyOnce(server.url, offsets, got, topic, COUNT);
      // The test is only meaningful if connections were actually cut.
      expect(proxy.cuts).toBeGreaterThanOrEqual(20);
      console.log(`proxy cut ${proxy.cuts} connections of ${proxy.connections}`);
    } finally {
      await publisherBus.close({ force: true });
      await subscriberBus.close({ force: true });
      await proxy.close();
    }
  });

  it("resumes with no gap and no duplicate when the bus is killed and restarted mid-stream", async () => {
    const topic = freshTopic();
    const publisherBus = connect(server.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 1000 }, pingIntervalMs: 1000 });
    const subscriberBus = connect(server.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 1000 }, pingIntervalMs: 1000 });
    const COUNT = 3000;
    const drops = { publish: 0, subscribe: 0, consume: 0 };
    for (const b of [publisherBus, subscriberBus]) {
      void (async () => {
        for await (const e of b.status()) if (e.type === "disconnected") drops[e.role]++;
      })();
    }
    try {
      const sub = subscriberBus.subscribe(topic, { from: "earliest", buffer: 200 });
      const seen: Message[] = [];
      const received = collect(sub, COUNT, seen);
      let sent = 0;
      let restarted: Promise<void> | null = null;
      const offsets = await publishNumbered(publisherBus, topic, COUNT, async () => {
        sent++;
        if (sent === 1000) {
          // Kill -9 while messages are in flight and the subscriber is mid-stream.
          restarted = server.restart();
        }
        if (sent % 20 === 0) await new Promise((r) => setTimeout(r, 1));
      });
      await restarted;
      const got = await received;
      await expectExactlyOnce(server.url, offsets, got, topic, COUNT);
      // Both sides really lost their sockets to the kill.
      expect(drops.publish).toBeGreaterThan(0);
      expect(drops.subscribe).toBeGreaterThan(0);
    } finally {
      await publisherBus.close({ force: true });
      await subscriberBus.close({ force: true });
    }
  });

  it("a plain send loop (no ready()) far past maxQueued is stored once each, in order, across a kill -9", async () => {
    const topic = freshTopic();
    const publisherBus = connect(server.url, { reconnect: { initialDelayMs: 50, maxDelayMs: 1000 }, pingIntervalMs: 1000 });
    let drops = 0;
    void (async () => {
      for await (const e of publisherBus.status()) if (e.type === "disconnected") drops++;
    })();
    const COUNT = 20_000;
    try {
      // timeoutMs: the sends wait out the restart (workerd starting again on a busy machine).
      const pub = publisherBus.publisher(topic, { maxQueued: 1000, maxBatch: 100, lingerMs: 1, timeoutMs: 120_000 });
      let confirmed = 0;
      const sends = Array.from({ length: COUNT }, (_, n) => pub.send({ n }));
      for (const s of sends)
        s.then(
          () => confirmed++,
          () => {},
        );
      await sends[2000];
      const confirmedAtKill = confirmed;
      await server.restart();
      const offsets = await Promise.all(sends);
      expect(confirmedAtKill).toBeLessThan(COUNT - 1000); // thousands still waited for room when the bus died
      expect(drops).toBeGreaterThan(0);
      expect(offsets).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      const stored = await readAll(server.url, topic);
      expect(stored.length).toBe(COUNT);
      expect(stored.every((m, i) => m.offset === i && (m.data as { n: number }).n === i)).toBe(true);
    } finally {
      await publisherBus.close({ force: true });
    }
  });

  it("a subscriber that stops reading slows neither a second subscriber nor the publisher", async () => {
    const topic = freshTopic();
    const bus = connect(server.url);
    const COUNT = 5000;
    const BUFFER = 100;
    try {
      const slow = bus.subscribe(topic, { from: 0, buffer: BUFFER });
      const fast = bus.subscribe(topic, { from: 0, buffer: BUFFER });
      const fastGot = collect(fast, COUNT);
      const published = publishNumbered(bus, topic, COUNT);
      const first = await slow.next(); // reads one message, then stops
      const offsets = await published;
      const got = await fastGot;
      // While the slow one sat still, the publisher confirmed everything and the fast one got it all.
      expect(offsets.length).toBe(COUNT);
      expect(got.map((m) => m.offset)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect(first.value?.offset).toBe(0);
      expect(slow.buffered).toBeLessThanOrEqual(BUFFER);
      expect(slow.position).toBe(1);
      // And the slow one, when it reads again, gets the rest in order.
      const rest = await collect(slow, COUNT - 1);
      expect(rest.map((m) => m.offset)).toEqual(Array.from({ length: COUNT - 1 }, (_, i) => i + 1));
    } finally {
      await bus.close({ force: true });
    }
  });
});
