import { describe, expect, it } from "vitest";
import type { AckFrame, DeliveredMessage } from "../../protocol/frames.ts";
import { freshTopic, gatewayFetch, openSocket, type TestSocket } from "./helpers.ts";

function expectContiguous(messages: DeliveredMessage[], from: number, count: number): void {
  expect(messages.length).toBe(count);
  for (const [i, m] of messages.entries()) expect(m.offset).toBe(from + i);
}

describe("publishing and ordering", () => {
  it("acknowledges each publish with consecutive offsets starting at 0", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    expect(await s.frame("welcome")).toMatchObject({ version: 1, topic, head: 0, earliest: 0 });
    expect(await s.publish([{ data: "a" }])).toMatchObject({ type: "ack", offset: 0, count: 1 });
    expect(await s.publish([{ data: "b" }, { data: "c" }, { data: "d" }])).toMatchObject({ type: "ack", offset: 1, count: 3 });
    expect(await s.publish([{ bytes: "AAEC" }])).toMatchObject({ type: "ack", offset: 4, count: 1 });
    s.close();
  });

  it("stores key, headers, JSON data and bytes exactly as published", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish([
      { data: { nested: [1, "two", null, true], ü: "ß" }, key: "k1", headers: { trace: "abc", "content-kind": "x" } },
      { bytes: "AP8Q", key: "bin" },
      { data: null },
    ]);
    const res = await gatewayFetch(`/v1/topics/${topic}/messages?from=0`);
    const body = (await res.json()) as { messages: DeliveredMessage[] };
    expect(body.messages.every((m: { time: unknown }) => typeof m.time === "number")).toBe(true);
    expect(body.messages.map(({ time: _time, ...m }) => m)).toEqual([
      { offset: 0, key: "k1", headers: { trace: "abc", "content-kind": "x" }, data: { nested: [1, "two", null, true], ü: "ß" } },
      { offset: 1, key: "bin", bytes: "AP8Q" },
      { offset: 2, data: null },
    ]);
    s.close();
  });

  it("10 concurrent publishers x 1,000 messages: every subscriber sees one order, no gap, no duplicate", async () => {
    const topic = freshTopic("order");
    const PUBLISHERS = 10;
    const PER_PUBLISHER = 1000;
    const FRAME = 20;
    const total = PUBLISHERS * PER_PUBLISHER;

    const subscribers: TestSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const sub = await openSocket(topic, i === 2 ? `/v1/topics/${topic}/ws?hibernate=0` : undefined);
      sub.autoCredit = true;
      expect(await sub.subscribe(0)).toMatchObject({ type: "subscribed", next: 0 });
      subscribers.push(sub);
    }

    const acks: AckFrame[] = [];
    await Promise.all(
      Array.from({ length: PUBLISHERS }, async (_, p) => {
        const pub = await openSocket(topic, p % 2 === 0 ? `/v1/topics/${topic}/ws?hibernate=0` : undefined);
        const pending: Promise<unknown>[] = [];
        for (let i = 0; i < PER_PUBLISHER; i += FRAME) {
          const messages = Array.from({ length: FRAME }, (_, j) => ({ data: { p, i: i + j } }));
          pending.push(pub.publish(messages));
        }
        for (const a of (await Promise.all(pending)) as AckFrame[]) {
          expect(a.type).toBe("ack");
          acks.push(a);
        }
        pub.close();
      }),
    );

    // Every acknowledged offset range is distinct and together they cover 0..total-1.
    const covered = new Set<number>();
    for (const a of acks) for (let o = a.offset; o < a.offset + a.count; o++) covered.add(o);
    expect(covered.size).toBe(total);
    expect(Math.min(...covered)).toBe(0);
    expect(Math.max(...covered)).toBe(total - 1);

    const orders: string[][] = [];
    for (const sub of subscribers) {
      const got = await sub.waitDelivered(total, 60_000);
      expectContiguous(got, 0, total);
      orders.push(got.map((m) => JSON.stringify(m.data)));
      // Per-publisher order is preserved: each publisher's i values increase.
      const lastI = new Map<number, number>();
      for (const m of got) {
        const { p, i } = m.data as { p: number; i: number };
        expect(i).toBeGreaterThan(lastI.get(p) ?? -1);
        lastI.set(p, i);
      }
      sub.close();
    }
    expect(orders[1]).toEqual(orders[0]);
    expect(orders[2]).toEqual(orders[0]);
  });
});
