/**
 * Durability levels (protocol/durability.ts, docs/durability.md) through the real gateway and
 * topic objects: setting a level, what a `memory` topic stores (nothing), holds (a ring) and
 * refuses (groups, Durable Streams), offsets that never go back across an eviction, producer
 * resends, and `async` topics storing exactly what they delivered. What a crash does to an
 * `async` topic is tested with a real process in test/node/durability.test.ts.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MEMORY_OFFSET_BLOCK } from "../../objects/log.ts";
import { MEMORY_RING_MESSAGES } from "../../objects/memory-ring.ts";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { topicStub } from "../../workers/topic-stub.ts";
import { bindings, freshTopic, gatewayFetch, issueKey, anonymousFetch, numbered, openSocket } from "./helpers.ts";

const enc = encodeURIComponent;

function patch(topic: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return gatewayFetch(`/v1/topics/${enc(topic)}`, { method: "PATCH", body: JSON.stringify(body), headers });
}

async function setDurability(topic: string, durability: string): Promise<Record<string, unknown>> {
  const res = await patch(topic, { durability });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function info(topic: string): Promise<Record<string, unknown>> {
  return (await (await gatewayFetch(`/v1/topics/${enc(topic)}`)).json()) as Record<string, unknown>;
}

/** Rows in the topic's SQLite log. */
function storedRows(topic: string): Promise<number> {
  return runInDurableObject(topicStub(bindings, DEFAULT_TENANT, topic), (_o, state) => {
    const t = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE name = 'dt_log'").one().n;
    return t === 0 ? 0 : state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM dt_log").one().n;
  });
}

describe("durability levels", () => {
  it("is sync by default, is set and read over HTTP, and refuses bad settings with a clear error", async () => {
    const topic = freshTopic();
    expect(await info(topic)).toMatchObject({ durability: "sync" });
    for (const [body, message] of [
      [{ durability: "fast" }, "durability"],
      [{ durability: 1 }, "durability"],
      [{}, "expected retention or durability"],
      [{ durability: "async", speed: 1 }, "speed"],
    ] as const) {
      const res = await patch(topic, body);
      expect(res.status).toBe(400);
      const error = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe("invalid_field");
      expect(error.message).toContain(message);
    }
    expect(await setDurability(topic, "async")).toMatchObject({ topic, durability: "async" });
    // Retention alone leaves the level as it is.
    const res = await patch(topic, { retention: { maxMessages: 5 } });
    expect(await res.json()).toMatchObject({ durability: "async", retention: { maxMessages: 5 } });
    const s = await openSocket(topic);
    expect(await s.frame("welcome")).toMatchObject({ type: "welcome", durability: "async" });
  });

  it("needs admin on the topic to change the level", async () => {
    const topic = freshTopic();
    const { key } = await issueKey(DEFAULT_TENANT, [`publish:${topic}`, `subscribe:${topic}`]);
    const res = await anonymousFetch(`/v1/topics/${enc(topic)}`, {
      method: "PATCH",
      body: JSON.stringify({ durability: "memory" }),
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    });
    expect(res.status).toBe(403);
    expect(await info(topic)).toMatchObject({ durability: "sync" });
  });

  it("memory: delivers and acks without storing anything; the ring answers late readers", async () => {
    const topic = freshTopic();
    await setDurability(topic, "memory");
    const sub = await openSocket(topic);
    expect(await sub.frame("welcome")).toMatchObject({ type: "welcome", durability: "memory", head: 0 });
    expect(await sub.subscribe("latest")).toMatchObject({ type: "subscribed", next: 0 });
    const pub = await openSocket(topic);
    expect(await pub.publish(numbered(3))).toMatchObject({ type: "ack", offset: 0, count: 3 });
    expect(await pub.publish(numbered(2, 3))).toMatchObject({ type: "ack", offset: 3, count: 2 });
    const got = await sub.waitDelivered(5);
    expect(got.map((m) => [m.offset, (m.data as { n: number }).n])).toEqual([0, 1, 2, 3, 4].map((n) => [n, n]));
    expect(await storedRows(topic)).toBe(0);
    expect(await info(topic)).toMatchObject({ head: 5, earliest: 0, messages: 5, durability: "memory" });

    // A late reader gets what the ring holds, over WebSocket and HTTP.
    const late = await openSocket(topic);
    expect(await late.subscribe(2)).toMatchObject({ type: "subscribed", next: 2 });
    expect((await late.waitDelivered(3)).map((m) => m.offset)).toEqual([2, 3, 4]);
    const read = (await (await gatewayFetch(`/v1/topics/${enc(topic)}/messages?from=1&limit=2`)).json()) as { messages: { offset: number }[]; next: number };
    expect(read.messages.map((m) => m.offset)).toEqual([1, 2]);
    expect(read.next).toBe(3);
  });

  it("memory: a reader behind the ring skips to what it holds instead of failing", async () => {
    const topic = freshTopic();
    await setDurability(topic, "memory");
    const pub = await openSocket(topic);
    const extra = 50;
    for (let sent = 0; sent < MEMORY_RING_MESSAGES + extra; sent += 1000) await pub.publish(numbered(1000, sent));
    const total = MEMORY_RING_MESSAGES + 1000 * Math.ceil(extra / 1000);
    expect(await info(topic)).toMatchObject({ head: total, earliest: total - MEMORY_RING_MESSAGES });
    const sub = await openSocket(topic);
    expect(await sub.subscribe(0, 10)).toMatchObject({ type: "subscribed", next: total - MEMORY_RING_MESSAGES });
    expect((await sub.waitDelivered(10))[0]!.offset).toBe(total - MEMORY_RING_MESSAGES);
    const res = await gatewayFetch(`/v1/topics/${enc(topic)}/messages?from=0&limit=1`);
    expect(((await res.json()) as { messages: { offset: number }[] }).messages[0]!.offset).toBe(total - MEMORY_RING_MESSAGES);
  });

  it("memory: offsets never go back after the object is evicted; they jump past the reserved block", async () => {
    const topic = freshTopic();
    await setDurability(topic, "memory");
    const pub = await openSocket(topic);
    expect(await pub.publish(numbered(4))).toMatchObject({ offset: 0 });
    await evictDurableObject(topicStub(bindings, DEFAULT_TENANT, topic));
    const again = await openSocket(topic);
    expect(await again.frame("welcome")).toMatchObject({ type: "welcome", durability: "memory", head: 4 + MEMORY_OFFSET_BLOCK });
    expect(await again.publish(numbered(1))).toMatchObject({ type: "ack", offset: 4 + MEMORY_OFFSET_BLOCK });
    // A subscriber resuming from before the restart is moved to what the topic holds.
    const sub = await openSocket(topic);
    expect(await sub.subscribe(2)).toMatchObject({ type: "subscribed", next: 4 + MEMORY_OFFSET_BLOCK });
    expect((await sub.waitDelivered(1))[0]!.offset).toBe(4 + MEMORY_OFFSET_BLOCK);
  });

  it("memory: a producer's resend is answered as a duplicate, not delivered twice", async () => {
    const topic = freshTopic();
    await setDurability(topic, "memory");
    const sub = await openSocket(topic);
    await sub.subscribe("latest");
    const pub = await openSocket(topic);
    const producer = { id: "p-memory", seq: 0 };
    expect(await pub.publish(numbered(2), producer)).toMatchObject({ type: "ack", offset: 0, count: 2 });
    expect(await pub.publish(numbered(2), producer)).toMatchObject({ type: "ack", offset: 0, count: 2, duplicate: true });
    expect(await pub.publish(numbered(1), { id: "p-memory", seq: 2 })).toMatchObject({ type: "error", code: "sequence_gap" });
    expect(await pub.publish(numbered(1, 2), { id: "p-memory", seq: 1 })).toMatchObject({ type: "ack", offset: 2 });
    expect((await sub.waitDelivered(3)).map((m) => m.offset)).toEqual([0, 1, 2]);
  });

  it("memory: consumer groups and Durable Streams are refused with not_stored", async () => {
    const topic = freshTopic();
    await setDurability(topic, "memory");
    const ws = await openSocket(topic);
    const id = ws.nextId();
    ws.send({ type: "consume", id, group: "g" });
    expect(await ws.answer(id)).toMatchObject({ type: "error", code: "not_stored" });
    const group = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/g`, { method: "PUT", body: "{}" });
    expect(group.status).toBe(409);
    expect(await group.json()).toMatchObject({ error: { code: "not_stored" } });
    const stream = await gatewayFetch(`/v1/stream/${topic}`, { method: "GET" });
    expect(stream.status).toBe(409);
    expect(await stream.json()).toMatchObject({ error: { code: "not_stored" } });
  });

  it("memory is chosen before the first message; leaving it, offsets keep growing from its head", async () => {
    const stored = freshTopic();
    const s = await openSocket(stored);
    await s.publish(numbered(1));
    const refused = await patch(stored, { durability: "memory" });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ error: { code: "conflict" } });
    expect(await info(stored)).toMatchObject({ durability: "sync", head: 1 });

    const topic = freshTopic();
    await setDurability(topic, "memory");
    const pub = await openSocket(topic);
    await pub.publish(numbered(3));
    expect(await setDurability(topic, "sync")).toMatchObject({ durability: "sync", head: 3, earliest: 3, messages: 0 });
    expect(await pub.publish(numbered(2))).toMatchObject({ type: "ack", offset: 3 });
    expect(await storedRows(topic)).toBe(2);
    const sub = await openSocket(topic);
    expect(await sub.subscribe(0)).toMatchObject({ type: "error", code: "offset_trimmed", earliest: 3 });
  });

  it("async: subscribers get every message in order, acks come after the commit, and the log holds exactly what was delivered", async () => {
    const topic = freshTopic();
    await setDurability(topic, "async");
    const sub = await openSocket(topic);
    await sub.subscribe("latest");
    const pubs = await Promise.all([openSocket(topic), openSocket(topic)]);
    const acks = await Promise.all(pubs.flatMap((p, k) => Array.from({ length: 20 }, (_, i) => p.publish(numbered(5, 1000 * k + 5 * i)))));
    for (const a of acks) expect(a).toMatchObject({ type: "ack", count: 5 });
    const got = await sub.waitDelivered(200);
    expect(got.map((m) => m.offset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(await storedRows(topic)).toBe(200);
    const read = (await (await gatewayFetch(`/v1/topics/${enc(topic)}/messages?from=0&limit=1000`)).json()) as {
      messages: { offset: number; data: unknown }[];
    };
    expect(read.messages.map((m) => m.data)).toEqual(got.map((m) => m.data));
  });
});
