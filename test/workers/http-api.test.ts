import { describe, expect, it } from "vitest";
import { freshTopic, gatewayFetch, numbered, openSocket } from "./helpers.ts";

const post = (topic: string, body: unknown) => gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify(body) });

describe("HTTP API", () => {
  it("publishes single messages and batches, and WebSocket subscribers see them in order", async () => {
    const topic = freshTopic();
    const sub = await openSocket(topic);
    await sub.subscribe(0);
    const one = await post(topic, { data: { hello: 1 }, key: "k" });
    expect(one.status).toBe(201);
    expect(await one.json()).toEqual({ offset: 0, count: 1 });
    const batch = await post(topic, { messages: numbered(3, 1) });
    expect(await batch.json()).toEqual({ offset: 1, count: 3 });
    const got = await sub.waitDelivered(4);
    expect(got.map((m) => [m.offset, m.data])).toEqual([
      [0, { hello: 1 }],
      [1, { n: 1 }],
      [2, { n: 2 }],
      [3, { n: 3 }],
    ]);
    expect(got[0]?.key).toBe("k");
  });

  it("reads pages from an offset with next, head and earliest", async () => {
    const topic = freshTopic();
    await post(topic, { messages: numbered(25) });
    const page = async (q: string) =>
      (await (await gatewayFetch(`/v1/topics/${topic}/messages?${q}`)).json()) as {
        messages: { offset: number }[];
        next: number;
        head: number;
        earliest: number;
      };
    const first = await page("from=0&limit=10");
    expect(first.messages.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(first).toMatchObject({ next: 10, head: 25, earliest: 0 });
    const last = await page("from=20");
    expect(last.messages.map((m) => m.offset)).toEqual([20, 21, 22, 23, 24]);
    expect(last.next).toBe(25);
    expect((await page("from=latest")).messages).toEqual([]);
    expect((await page(`since=${new Date(0).toISOString()}&limit=2`)).messages.map((m) => m.offset)).toEqual([0, 1]);
  });

  it("deduplicates an idempotent HTTP batch resent by its producer", async () => {
    const topic = freshTopic();
    const body = { messages: numbered(2), producer: { id: "http-p", seq: 0 } };
    expect((await post(topic, body)).status).toBe(201);
    const again = await post(topic, body);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ offset: 0, count: 2, duplicate: true });
  });

  it("reports topic info", async () => {
    const topic = freshTopic();
    await post(topic, { messages: [{ data: "abc" }, { bytes: "AAECAw==" }] });
    const info = await (await gatewayFetch(`/v1/topics/${topic}`)).json();
    expect(info).toMatchObject({ topic, head: 2, earliest: 0, messages: 2, bytes: 5 + 4, subscribers: 0 });
  });

  it("accepts topic names with slashes when percent-encoded", async () => {
    const topic = `${freshTopic()}/sub/leaf`;
    const res = await post(encodeURIComponent(topic), { data: 1 });
    expect(res.status).toBe(201);
    const info = (await (await gatewayFetch(`/v1/topics/${encodeURIComponent(topic)}`)).json()) as { topic: string };
    expect(info.topic).toBe(topic);
  });

  it("serves a health endpoint", async () => {
    const res = await gatewayFetch("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, protocol: 1 });
  });
});
