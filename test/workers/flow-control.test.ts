import { describe, expect, it } from "vitest";
import { freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

describe("credit-based flow control", () => {
  it("sends no more than the credit granted, then resumes from the log when credit returns", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    const sub = await openSocket(topic);
    await sub.subscribe(0, 5);
    await pub.publish(numbered(20));
    await sub.waitDelivered(5);
    // A later publish must not push anything past the credit.
    await pub.publish(numbered(5, 20));
    await pub.publish(numbered(1, 25)); // a round trip that lands after any stray delivery
    expect(sub.delivered().length).toBe(5);
    sub.send({ type: "credit", messages: 100 });
    const got = await sub.waitDelivered(26);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: 26 }, (_, i) => i));
  });

  it("a subscriber that never grants credit does not hold back publishers or other subscribers", async () => {
    const topic = freshTopic("stall");
    const stalled = await openSocket(topic);
    await stalled.subscribe(0, 0);
    const fast = await openSocket(topic);
    fast.autoCredit = true;
    await fast.subscribe(0, 100);
    const pub = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    const TOTAL = 5000;
    for (let i = 0; i < TOTAL; i += 250) {
      const ack = await pub.publish(numbered(250, i));
      expect(ack).toMatchObject({ type: "ack", offset: i });
    }
    const got = await fast.waitDelivered(TOTAL, 60_000);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
    expect(stalled.delivered().length).toBe(0);
    const info = (await (await gatewayFetch(`/v1/topics/${topic}`)).json()) as { head: number; subscribers: number };
    expect(info).toMatchObject({ head: TOTAL, subscribers: 2 });
    // And the stalled one still gets everything, in order, once it asks.
    stalled.autoCredit = true;
    stalled.send({ type: "credit", messages: 1000 });
    const late = await stalled.waitDelivered(TOTAL, 60_000);
    expect(late.map((m) => m.offset)).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
  });

  it("unsubscribe stops delivery", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    const sub = await openSocket(topic);
    await sub.subscribe("latest");
    await pub.publish(numbered(2));
    await sub.waitDelivered(2);
    const id = sub.nextId();
    sub.send({ type: "unsubscribe", id });
    expect(await sub.answer(id)).toMatchObject({ type: "unsubscribed", id });
    await pub.publish(numbered(3, 2));
    // A new subscription on the same socket proves the socket is live and ordered after the publish.
    expect(await sub.subscribe("latest")).toMatchObject({ type: "subscribed", next: 5 });
    expect(sub.delivered().length).toBe(2);
  });
});
