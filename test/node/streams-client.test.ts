/**
 * The official Durable Streams client (@durable-streams/client) against the real bus, with a
 * WebSocket subscriber (Node's global WebSocket, protocol v1 frames from protocol/frames.ts) on
 * the same topic: one log, one order, one identity per message on both paths.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DurableStream, IdempotentProducer } from "@durable-streams/client";
import { encodeClientFrame, parseServerFrame, type DeliveredMessage } from "../../protocol/frames.ts";
import { encodeOffset } from "../../objects/stream-format.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

let bus: BusProcess;
beforeAll(async () => {
  bus = await startBus({ vars: { DOVETAIL_AUTH: "off", STREAM_LONG_POLL_MS: "3000" } });
});
afterAll(async () => {
  await bus?.stop();
});

const fresh = (label: string) => `ds-client.${label}.${Date.now()}.${Math.floor(Math.random() * 1e6)}`;

/** A WebSocket subscriber from offset 0 that collects delivered messages. */
async function subscribe(topic: string): Promise<{ messages: DeliveredMessage[]; until(n: number): Promise<void>; close(): void }> {
  const ws = new WebSocket(`${bus.url.replace("http", "ws")}/v1/topics/${encodeURIComponent(topic)}/ws`);
  const messages: DeliveredMessage[] = [];
  let wake = () => {};
  ws.addEventListener("message", (ev) => {
    const parsed = parseServerFrame(String(ev.data));
    if (parsed.ok && parsed.frame.type === "messages") {
      messages.push(...parsed.frame.messages);
      wake();
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error("websocket failed")));
  });
  ws.send(encodeClientFrame({ type: "subscribe", id: 1, from: 0 }));
  return {
    messages,
    async until(n) {
      const deadline = Date.now() + 20_000;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`saw ${messages.length} of ${n} messages`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 200);
        });
      }
    },
    close: () => ws.close(),
  };
}

describe("official client and WebSocket on one topic", () => {
  it("a JSON stream written with the client is seen by a WebSocket subscriber, in order", async () => {
    const topic = fresh("json");
    const handle = await DurableStream.create({ url: `${bus.url}/v1/stream/${topic}`, contentType: "application/json" });
    const sub = await subscribe(topic);
    await handle.append(JSON.stringify({ n: 1 }));
    // The client wraps each append in an array, which the server flattens: one value, one message.
    await handle.append(JSON.stringify({ n: 2 }));
    await handle.append(JSON.stringify({ n: 3 }));
    const producer = new IdempotentProducer(handle, "p1", { lingerMs: 1 });
    for (let n = 4; n <= 50; n++) producer.append(JSON.stringify({ n }));
    await producer.flush();
    await sub.until(50);
    sub.close();
    expect(sub.messages.map((m) => m.offset)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(sub.messages.map((m) => (m.data as { n: number }).n)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // And the client reads the same 50 back, ending at the offset token of Dovetail offset 50.
    const res = await handle.stream<{ n: number }>({ live: false });
    const items = await res.json();
    expect(items.map((i) => i.n)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(res.offset).toBe(encodeOffset(50));
  });

  it("bytes appended to a text stream arrive over WebSocket as one base64 message per append", async () => {
    const topic = fresh("text");
    const handle = await DurableStream.create({ url: `${bus.url}/v1/stream/${topic}`, contentType: "text/plain" });
    await handle.append("hello ");
    await handle.append("world");
    const sub = await subscribe(topic);
    await sub.until(2);
    sub.close();
    expect(sub.messages.map((m) => Buffer.from(m.bytes!, "base64").toString())).toEqual(["hello ", "world"]);
    const text = await (await handle.stream({ live: false })).text();
    expect(text).toBe("hello world");
  });

  it("messages published over WebSocket are read by the client as a JSON stream, and a long-poll wakes on them", async () => {
    const topic = fresh("ws-first");
    const post = (data: unknown) => fetch(`${bus.url}/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data }) });
    await post({ from: "ws", n: 0 });
    const handle = new DurableStream({ url: `${bus.url}/v1/stream/${topic}` });
    const head = await handle.head();
    expect(head.exists).toBe(true);
    expect(head.exists && head.contentType).toBe("application/json");
    const res = await handle.stream<{ n: number }>({ offset: encodeOffset(1), live: "long-poll" });
    res.closed.catch(() => {}); // cancel() at the end may reject it
    const seen = new Promise<number[]>((resolve) => {
      res.subscribeJson(async (batch) => {
        if (batch.items.length > 0) resolve(batch.items.map((i) => i.n));
      });
    });
    await new Promise((r) => setTimeout(r, 300)); // let the long-poll start waiting
    await post({ from: "ws", n: 1 });
    expect(await seen).toEqual([1]);
    res.cancel();
  });
});
