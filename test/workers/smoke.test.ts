import { describe, expect, it } from "vitest";
import { freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

describe("smoke", () => {
  it("publishes over a WebSocket and reads back over HTTP", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    const welcome = await s.frame("welcome");
    expect(welcome.head).toBe(0);
    const ack = await s.publish(numbered(3));
    expect(ack).toMatchObject({ type: "ack", offset: 0, count: 3 });
    const res = await gatewayFetch(`/v1/topics/${topic}/messages?from=0`);
    const body = (await res.json()) as { messages: { offset: number; data: unknown }[]; next: number };
    expect(body.messages.map((m) => m.offset)).toEqual([0, 1, 2]);
    expect(body.next).toBe(3);
    s.close();
  });
});
