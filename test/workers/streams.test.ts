/**
 * Durable Streams over HTTP on Dovetail topics, inside workerd: the mapping between the two paths
 * (docs/decisions/007-streams-offsets.md) and the waiting and state decisions
 * (docs/decisions/008-streams-state-and-waiting.md). The protocol itself is judged by the official
 * suite in test/node/conformance.test.ts.
 */
import { env as runtimeEnv } from "cloudflare:workers";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encodeOffset } from "../../objects/stream-format.ts";
import { DS_WAIT_TAG } from "../../objects/topic.ts";
import type { Env } from "../../workers/env.ts";
import { topicStub } from "../../workers/topic-stub.ts";
import { DEFAULT_TENANT } from "../../workers/middleware/tenant.ts";
import { freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

const env = runtimeEnv as unknown as Env;
const stream = (topic: string, init?: RequestInit, query = "") => gatewayFetch(`/v1/stream/${topic}${query}`, init);
const json = { "Content-Type": "application/json" };

describe("one topic, two paths", () => {
  it("messages published over WebSocket read as a JSON stream with the same offsets", async () => {
    const topic = freshTopic("ds");
    const pub = await openSocket(topic);
    await pub.publish(numbered(3));
    const res = await stream(topic);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    expect(res.headers.get("stream-next-offset")).toBe(encodeOffset(3));
    // Reading from the token of offset 1 starts at message 1.
    const from1 = await stream(topic, undefined, `?offset=${encodeOffset(1)}`);
    expect(await from1.json()).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("each JSON value of an HTTP append is one message a WebSocket subscriber sees, in order", async () => {
    const topic = freshTopic("ds");
    expect((await stream(topic, { method: "PUT", headers: json })).status).toBe(201);
    const sub = await openSocket(topic);
    await sub.subscribe(0);
    const pub = await openSocket(topic);
    await pub.publish([{ data: "ws-0" }]);
    const post = await stream(topic, { method: "POST", headers: json, body: JSON.stringify([{ k: "a" }, [1, 2], "s"]) });
    expect(post.status).toBe(204);
    expect(post.headers.get("stream-next-offset")).toBe(encodeOffset(4));
    await pub.publish([{ data: "ws-4" }]);
    const got = await sub.waitDelivered(5);
    expect(got.map((m) => [m.offset, m.data])).toEqual([
      [0, "ws-0"],
      [1, { k: "a" }],
      [2, [1, 2]],
      [3, "s"],
      [4, "ws-4"],
    ]);
  });

  it("a byte append is one `bytes` message; reads concatenate the bytes of every message", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: { "Content-Type": "application/octet-stream" } });
    await stream(topic, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: new Uint8Array([0, 1, 2]) });
    await stream(topic, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: new Uint8Array([255]) });
    const sub = await openSocket(topic);
    await sub.subscribe(0);
    const got = await sub.waitDelivered(2);
    expect(got.map((m) => m.bytes)).toEqual(["AAEC", "/w=="]);
    const read = await stream(topic);
    expect([...new Uint8Array(await read.arrayBuffer())]).toEqual([0, 1, 2, 255]);
  });

  it("a re-created stream starts after the deleted one, so no offset names two messages", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json, body: "[1,2]" });
    expect((await stream(topic, { method: "DELETE" })).status).toBe(204);
    expect((await stream(topic, { method: "HEAD" })).status).toBe(404);
    const again = await stream(topic, { method: "PUT", headers: json, body: "[3]" });
    expect(again.status).toBe(201);
    expect(again.headers.get("stream-next-offset")).toBe(encodeOffset(3));
    const read = await stream(topic, undefined, "?offset=-1");
    expect(await read.json()).toEqual([3]);
  });

  it("a DELETE removes the stream's messages once no fork reads them, and keeps the offsets", async () => {
    const topic = freshTopic("ds");
    const fork = `${topic}.fork`;
    await stream(topic, { method: "PUT", headers: json, body: "[1,2,3]" });
    expect((await stream(fork, { method: "PUT", headers: { ...json, "Stream-Forked-From": `/v1/stream/${topic}` } })).status).toBe(201);
    // The fork still reads its source: the source is only soft-deleted, its messages stay.
    expect((await stream(topic, { method: "DELETE" })).status).toBe(204);
    const info = async () => (await (await gatewayFetch(`/v1/topics/${topic}`)).json()) as { head: number; earliest: number; messages: number };
    expect(await info()).toMatchObject({ head: 3, messages: 3 });
    // The last fork goes: so do the source's messages; offsets are not reused.
    expect((await stream(fork, { method: "DELETE" })).status).toBe(204);
    expect(await info()).toMatchObject({ head: 3, earliest: 3, messages: 0 });
    const late = await openSocket(topic);
    expect(await late.subscribe(0)).toMatchObject({ type: "error", code: "offset_trimmed", earliest: 3 });
    late.close();
  });
});

describe("closing", () => {
  it("a stream closed over HTTP refuses WebSocket publishes too", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json, body: '"last"' });
    await stream(topic, { method: "POST", headers: { "Stream-Closed": "true" } });
    const pub = await openSocket(topic);
    expect(await pub.publish([{ data: "after" }])).toMatchObject({ type: "error", code: "stream_closed" });
    const http = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: "after" }) });
    expect(http.status).toBe(409);
    expect(await (await stream(topic)).json()).toEqual(["last"]);
  });
});

describe("retention", () => {
  it("answers 410 Gone for an offset retention removed, and -1 starts at the earliest kept", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json, body: "[0,1,2,3,4]" });
    const patch = await gatewayFetch(`/v1/topics/${topic}`, { method: "PATCH", body: JSON.stringify({ retention: { maxMessages: 2 } }) });
    expect(patch.status).toBe(200);
    const stub = topicStub(env, DEFAULT_TENANT, topic);
    for (let i = 0; i < 200 && (await stub.info(topic)).earliest < 3; i++) await new Promise((r) => setTimeout(r, 10));
    const gone = await stream(topic, undefined, `?offset=${encodeOffset(0)}`);
    expect(gone.status).toBe(410);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe("offset_trimmed");
    const rest = await stream(topic, undefined, "?offset=-1");
    expect(await rest.json()).toEqual([3, 4]);
  });
});

describe("waiting readers", () => {
  it("a long-poll waits on a hibernatable socket that is not a subscriber, across eviction", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json });
    const stub = topicStub(env, DEFAULT_TENANT, topic);
    const poll = stream(topic, undefined, `?offset=${encodeOffset(0)}&live=long-poll`);
    // Wait until the gateway's waiter socket is in the object.
    for (let i = 0; i < 200; i++) {
      const n = await runInDurableObject(stub, (_o, state) => state.getWebSockets(DS_WAIT_TAG).length);
      if (n === 1) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const info = await stub.info(topic);
    expect(info.subscribers).toBe(0);
    // The object may go away while the reader waits; the waiter socket survives it.
    await evictDurableObject(stub);
    await stream(topic, { method: "POST", headers: json, body: '{"late":true}' });
    const res = await poll;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([{ late: true }]);
    expect(res.headers.get("stream-cursor")).toMatch(/^\d+$/);
    const left = await runInDurableObject(stub, (_o, state) => state.getWebSockets(DS_WAIT_TAG).length);
    expect(left).toBe(0);
  });

  it("closing the stream ends a waiting long-poll at once with Stream-Closed", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json });
    const poll = stream(topic, undefined, `?offset=${encodeOffset(0)}&live=long-poll`);
    await new Promise((r) => setTimeout(r, 100));
    await stream(topic, { method: "POST", headers: { "Stream-Closed": "true" } });
    const res = await poll;
    expect(res.status).toBe(204);
    expect(res.headers.get("stream-closed")).toBe("true");
  });
});

describe("stream state is durable", () => {
  it("producer epochs, sequence numbers and the closed flag survive eviction", async () => {
    const topic = freshTopic("ds");
    await stream(topic, { method: "PUT", headers: json });
    const produce = (seq: number, epoch = 0, extra: Record<string, string> = {}) =>
      stream(topic, {
        method: "POST",
        headers: { ...json, "Producer-Id": "p", "Producer-Epoch": String(epoch), "Producer-Seq": String(seq), ...extra },
        body: JSON.stringify({ seq }),
      });
    expect((await produce(0)).status).toBe(200);
    expect((await produce(1)).status).toBe(200);
    await evictDurableObject(topicStub(env, DEFAULT_TENANT, topic));
    const dup = await produce(1);
    expect(dup.status).toBe(204);
    expect(dup.headers.get("producer-seq")).toBe("1");
    const gap = await produce(3);
    expect(gap.status).toBe(409);
    expect(gap.headers.get("producer-expected-seq")).toBe("2");
    expect((await produce(0, 1)).status).toBe(200); // a new epoch fences the old one
    const stale = await produce(2, 0);
    expect(stale.status).toBe(403);
    expect(stale.headers.get("producer-epoch")).toBe("1");
    expect((await produce(1, 1, { "Stream-Closed": "true" })).status).toBe(200);
    await evictDurableObject(topicStub(env, DEFAULT_TENANT, topic));
    const head = await stream(topic, { method: "HEAD" });
    expect(head.headers.get("stream-closed")).toBe("true");
    expect(head.headers.get("stream-next-offset")).toBe(encodeOffset(4));
    expect((await produce(1, 1, { "Stream-Closed": "true" })).status).toBe(204); // retry of the close
    const read = await stream(topic);
    expect(await read.json()).toEqual([{ seq: 0 }, { seq: 1 }, { seq: 0 }, { seq: 1 }]);
  });
});
