import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { topicStub } from "../../workers/topic-stub.ts";
import { bindings, freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

async function setRetention(topic: string, retention: Record<string, number>) {
  const res = await gatewayFetch(`/v1/topics/${topic}`, { method: "PATCH", body: JSON.stringify({ retention }) });
  expect(res.status).toBe(200);
  await runDurableObjectAlarm(topicStub(bindings, DEFAULT_TENANT, topic));
}

async function info(topic: string) {
  return (await (await gatewayFetch(`/v1/topics/${topic}`)).json()) as { head: number; earliest: number; messages: number; bytes: number };
}

describe("retention", () => {
  it("by count keeps the newest messages and names the earliest offset to late readers", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish(numbered(30));
    await setRetention(topic, { maxMessages: 10 });
    expect(await info(topic)).toMatchObject({ head: 30, earliest: 20, messages: 10 });

    const sub = await openSocket(topic);
    expect(await sub.subscribe(5)).toMatchObject({ type: "error", code: "offset_trimmed", earliest: 20 });
    expect(await sub.subscribe("earliest")).toMatchObject({ type: "subscribed", next: 20 });
    expect((await sub.waitDelivered(10)).map((m) => m.offset)).toEqual(Array.from({ length: 10 }, (_, i) => 20 + i));

    const res = await gatewayFetch(`/v1/topics/${topic}/messages?from=0`);
    expect(res.status).toBe(410);
    expect(await res.json()).toMatchObject({ error: { code: "offset_trimmed", earliest: 20 } });
    // Offsets keep growing after a trim.
    expect(await s.publish(numbered(1))).toMatchObject({ offset: 30 });
  });

  it("by bytes trims whole messages from the front until the rest fits", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    // Each payload is exactly 10 bytes of JSON: "xxxxxxxx" with quotes.
    await s.publish(Array.from({ length: 20 }, () => ({ data: "x".repeat(8) })));
    expect(await info(topic)).toMatchObject({ bytes: 200 });
    await setRetention(topic, { maxBytes: 55 });
    expect(await info(topic)).toMatchObject({ head: 20, earliest: 15, messages: 5, bytes: 50 });
  });

  it("by age drops messages older than the limit", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish(numbered(5));
    // Margins wide enough for a loaded machine: the last 3 must still be younger than the limit
    // when it is applied (a 150 ms limit failed under CI load).
    await new Promise((r) => setTimeout(r, 2500));
    await s.publish(numbered(3, 5));
    await setRetention(topic, { maxAgeMs: 2000 });
    expect(await info(topic)).toMatchObject({ head: 8, earliest: 5, messages: 3 });
  });

  it("under an age limit the alarm waits until the oldest message ages out, so an idle topic can sleep", async () => {
    const topic = freshTopic();
    const res = await gatewayFetch(`/v1/topics/${topic}`, { method: "PATCH", body: JSON.stringify({ retention: { maxAgeMs: 60_000 } }) });
    expect(res.status).toBe(200);
    const stub = topicStub(bindings, DEFAULT_TENANT, topic);
    expect(await runInDurableObject(stub, (_o, state) => state.storage.getAlarm())).toBeNull(); // nothing to age out yet
    const s = await openSocket(topic);
    await s.publish(numbered(1));
    const stored = ((await (await gatewayFetch(`/v1/topics/${topic}/messages?from=0`)).json()) as { messages: { time: number }[] }).messages[0]!.time;
    let alarm: number | null = null;
    for (let i = 0; i < 50 && alarm === null; i++) {
      alarm = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
      if (alarm === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(alarm).toBe(stored + 60_000);
    s.close();
  });

  it("a paused subscriber whose next message was trimmed is told where the log now starts", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    const sub = await openSocket(topic);
    await sub.subscribe(0, 2);
    await s.publish(numbered(10));
    await sub.waitDelivered(2);
    await setRetention(topic, { maxMessages: 3 });
    sub.send({ type: "credit", messages: 5 });
    expect(await sub.frame("error")).toMatchObject({ code: "offset_trimmed", earliest: 7, id: 1 });
    // The subscription ended; a new one from earliest works on the same socket.
    expect(await sub.subscribe("earliest")).toMatchObject({ type: "subscribed", next: 7 });
  });
});
