/**
 * Refusals the SDK must hear (issue 18, item 5), against a real bus with auth on: every `send()`
 * settles (an offset, or a typed DovetailError) when the topic refuses frames, nothing is stored
 * twice, and an SDK that is rate limited paces itself instead of being closed with 1008 by the
 * abuse policy (objects/frame-limiter.ts: 200 refusals, refilled at 20/s, per connection).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin, type KeyRate } from "../../sdk/src/admin.ts";
import { connect, DovetailError, type Bus, type StatusEvent } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const MiB = 1024 * 1024;

let counter = 0;
/** A fresh topic prefix per test, so a key's scope `publish:<prefix>.*` covers only its own topic. */
const freshPrefix = () => `refusals-${Date.now().toString(36)}-${++counter}`;

/** Connection trouble of the publishing sockets: a 1008 close shows up here as `disconnected`. */
function socketTrouble(events: StatusEvent[]): StatusEvent[] {
  return events.filter((e) => e.type === "disconnected" || e.type === "failed");
}

describe("SDK refusals", () => {
  let server: BusProcess;
  /** Reads back what was stored, with the development token (default limits). */
  let reader: Bus;

  beforeAll(async () => {
    server = await startBus({ auth: true });
    reader = connect(server.url, { token: server.token! });
  });
  afterAll(async () => {
    await reader?.close({ force: true });
    await server?.stop();
  });

  /** A bus on a new API key that may publish under `prefix`, with these rate overrides, and its status events. */
  async function limitedBus(prefix: string, rate: Partial<KeyRate>): Promise<{ bus: Bus; events: StatusEvent[] }> {
    const admin = connectAdmin(server.url, { token: server.token! });
    const { key } = await admin.keys.create({ name: prefix, scopes: [`publish:${prefix}.*`], rate });
    const bus = connect(server.url, { token: key });
    const events: StatusEvent[] = [];
    void (async () => {
      for await (const e of bus.status()) events.push(e);
    })();
    return { bus, events };
  }

  /** Every stored message's data, in offset order. */
  async function stored(topic: string): Promise<unknown[]> {
    const out: unknown[] = [];
    for (let from = 0; ; ) {
      const page = await reader.read(topic, { from, limit: 1000 });
      out.push(...page.messages.map((m) => m.data));
      if (page.next >= page.head) return out;
      from = page.next;
    }
  }

  it("a key limited to 5 frames/s: 40 sends all settle with their offsets, once each, and the socket is never closed", async () => {
    const prefix = freshPrefix();
    const topic = `${prefix}.t`;
    const { bus, events } = await limitedBus(prefix, { framesPerSecond: 5, frameBurst: 5 });
    // One message per frame, as many frames unanswered as the SDK allows: the old resend of the
    // whole window after each pause drew ~31 refusals per 200 ms and emptied the refusal budget.
    const pub = bus.publisher(topic, { lingerMs: 0, maxBatch: 1, maxInFlight: 32 });
    const started = Date.now();
    const offsets = await Promise.all(Array.from({ length: 40 }, (_, i) => pub.send({ i })));
    const took = Date.now() - started;

    expect(offsets).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(await stored(topic)).toEqual(Array.from({ length: 40 }, (_, i) => ({ i })));
    expect(socketTrouble(events)).toEqual([]);
    // 5 at once, then 35 at 5/s: the limit was really in force (and waited out, not bypassed).
    expect(took).toBeGreaterThanOrEqual(6_000);
    await bus.close();
  }, 60_000);

  it("100 sends of 900 KiB under a 2 MiB/s byte limit: every send settles, nothing is stored twice, no 1008", async () => {
    const prefix = freshPrefix();
    const topic = `${prefix}.t`;
    const { bus, events } = await limitedBus(prefix, { bytesPerSecond: 2 * MiB, byteBurst: 2 * MiB });
    const pub = bus.publisher(topic, { lingerMs: 0, maxInFlight: 32 }); // one 900 KiB message per frame (maxBatchBytes 1 MiB)
    const pad = "x".repeat(900 * 1024);
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => pub.send({ i, pad })));

    const offsets = new Map<number, number>();
    results.forEach((r, i) => {
      if (r.status === "fulfilled") offsets.set(i, r.value);
      else expect(r.reason).toBeInstanceOf(DovetailError); // settled, and typed
    });
    const data = (await stored(topic)) as { i: number; pad: string }[];
    const ids = data.map((d) => d.i);
    expect(new Set(ids).size).toBe(ids.length); // no duplicate
    for (const [i, offset] of offsets) expect(ids[offset]).toBe(i); // each offset is its own message
    // Nothing here should have been refused for good: the limit only slows the sends down.
    expect(offsets.size).toBe(100);
    expect(socketTrouble(events)).toEqual([]);
    await bus.close();
  }, 240_000);

  it("a send nested 2,000 levels deep rejects with too_deep; the ten sends batched with it resolve", async () => {
    const topic = `${freshPrefix()}.t`;
    const bus = connect(server.url, { token: server.token! });
    let deep: unknown = "bottom";
    for (let i = 0; i < 2000; i++) deep = i % 2 ? { d: deep } : [deep];
    const pub = bus.publisher(topic, { lingerMs: 50 }); // all eleven in one linger window, one frame

    const sends = [...Array.from({ length: 5 }, (_, i) => pub.send(i)), pub.send(deep), ...Array.from({ length: 5 }, (_, i) => pub.send(5 + i))];
    const results = await Promise.allSettled(sends);

    expect(results.map((r) => r.status)).toEqual([...Array(5).fill("fulfilled"), "rejected", ...Array(5).fill("fulfilled")]);
    const error = (results[5] as PromiseRejectedResult).reason as DovetailError;
    expect(error).toBeInstanceOf(DovetailError);
    expect(error.code).toBe("too_deep");
    expect(results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual(
      Array.from({ length: 10 }, (_, i) => i),
    );
    await expect(bus.publish(topic, deep)).rejects.toMatchObject({ code: "too_deep" });
    expect(await stored(topic)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    await bus.close();
  });

  it("a new producer whose first frame is refused: the frames after it are stored once and resolve with their own offsets", async () => {
    // The topic accepts any seq as the start of a producer it has not seen. If the first frame is
    // refused while later ones are on the wire, the next one becomes the producer's start; a
    // pipeline that then renumbers it would be told `invalid_field` for a message that was stored
    // (and a later frame could be acked with another frame's offsets).
    const topic = `${freshPrefix()}.t`;
    const bus = connect(server.url, { token: server.token! }); // a new bus: a producer the topic has never seen
    const pub = bus.publisher(topic, { lingerMs: 0, maxBatch: 1, maxInFlight: 8 });
    const results = await Promise.allSettled([
      pub.send("refused", { headers: { h: "v".repeat(5000) } }), // header value over the protocol limit
      pub.send("b"),
      pub.send("c"),
      pub.send("d"),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled", "fulfilled"]);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: "invalid_field" });
    expect(results.slice(1).map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([0, 1, 2]);
    expect(await stored(topic)).toEqual(["b", "c", "d"]);
    await bus.close();
  });
});
