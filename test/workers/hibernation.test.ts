import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { topicStub } from "../../workers/topic-stub.ts";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { bindings, freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

describe("eviction and hibernation", () => {
  it("keeps every stored message and the next offset across eviction", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    await pub.publish(numbered(50));
    const stub = topicStub(bindings, DEFAULT_TENANT, topic);
    await evictDurableObject(stub);
    const res = await gatewayFetch(`/v1/topics/${topic}/messages?from=0&limit=1000`);
    const body = (await res.json()) as { messages: { offset: number; data: { n: number } }[]; head: number };
    expect(body.head).toBe(50);
    expect(body.messages.map((m) => m.data.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // Offsets continue after the eviction: never reused, never skipped.
    const pub2 = await openSocket(topic);
    expect(await pub2.publish(numbered(1, 50))).toMatchObject({ offset: 50 });
  });

  it("a hibernated subscriber keeps its socket, position and credit", async () => {
    const topic = freshTopic();
    const pub = await openSocket(topic);
    const sub = await openSocket(topic);
    await sub.subscribe(0, 7);
    await pub.publish(numbered(5));
    await sub.waitDelivered(5);
    const stub = topicStub(bindings, DEFAULT_TENANT, topic);
    await evictDurableObject(stub); // sockets hibernate; the object's memory is gone
    // The object wakes with the subscription read back from the socket attachment.
    await runInDurableObject(stub, (_instance, state) => {
      const sockets = state.getWebSockets();
      const subs = sockets.map((ws) => ws.deserializeAttachment()).filter((a) => a?.sub);
      expect(subs.map((a) => a.sub)).toEqual([{ id: 1, next: 5, credit: 2 }]);
    });
    await pub.publish(numbered(5, 5)); // the old publisher socket still works too
    const got = await sub.waitDelivered(7);
    expect(got.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    sub.send({ type: "credit", messages: 10 });
    expect((await sub.waitDelivered(10)).map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("answers keep-alive pings without waking the topic's code", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.frame("welcome");
    s.sendRaw('{"type":"ping"}');
    await s.frame("pong");
    const plain = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    plain.sendRaw('{"type":"ping"}');
    await plain.frame("pong");
  });
});
