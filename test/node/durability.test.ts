/**
 * Durability levels against the real bus process, killed with SIGKILL mid-stream
 * (docs/durability.md, "What a crash loses"):
 * - `async`: every message a publisher was acked for is stored, at its offset; what subscribers
 *   saw and the log does not have is only unacked messages of the last batch; a subscriber
 *   resuming past the log's end is told `offset_out_of_range` with the head; the next publish
 *   continues at the head.
 * - `memory`: offsets never go back across the crash, and an SDK subscriber follows the topic
 *   across it (its offsets jump forward; nothing is delivered twice).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MEMORY_OFFSET_BLOCK } from "../../objects/log.ts";
import { MAX_PENDING_MESSAGES } from "../../objects/limits.ts";
import { connect } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

type Frame = { type: string; [key: string]: unknown };

/** A raw protocol socket that keeps every frame and lets a test wait for one. */
class RawSocket {
  readonly frames: Frame[] = [];
  readonly #ws: WebSocket;
  #listeners: (() => void)[] = [];
  onFrame: (f: Frame) => void = () => {};
  closed = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener("message", (e) => {
      const f = JSON.parse(String(e.data)) as Frame;
      this.frames.push(f);
      this.onFrame(f);
      for (const l of this.#listeners) l();
    });
    ws.addEventListener("close", () => {
      this.closed = true;
      for (const l of this.#listeners) l();
    });
  }

  static async open(url: string): Promise<RawSocket> {
    const ws = new WebSocket(url);
    const socket = new RawSocket(ws);
    await socket.until((f) => f.type === "welcome");
    return socket;
  }

  send(frame: unknown): void {
    if (!this.closed) this.#ws.send(JSON.stringify(frame));
  }

  /** The first frame (from now on, or already received) that `match` accepts. */
  until(match: (f: Frame) => boolean, timeoutMs = 30_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.frames.find(match);
        if (f) done(() => resolve(f));
        else if (this.closed) done(() => reject(new Error(`socket closed; frames: ${JSON.stringify(this.frames.slice(-3))}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`no such frame in ${timeoutMs} ms`))), timeoutMs);
      const done = (then: () => void) => {
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== check);
        then();
      };
      this.#listeners.push(check);
      check();
    });
  }

  close(): void {
    try {
      this.#ws.close();
    } catch {
      // already closed
    }
  }
}

async function patch(bus: BusProcess, topic: string, body: unknown): Promise<void> {
  const res = await fetch(`${bus.url}/v1/topics/${encodeURIComponent(topic)}`, {
    method: "PATCH",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" },
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** Every stored message of `topic` as offset → n, and the head. */
async function readAll(bus: BusProcess, topic: string): Promise<{ stored: Map<number, number>; head: number }> {
  const stored = new Map<number, number>();
  let from = 0;
  for (;;) {
    const res = await fetch(`${bus.url}/v1/topics/${encodeURIComponent(topic)}/messages?from=${from}&limit=1000`);
    const page = (await res.json()) as { messages: { offset: number; data: { n: number } }[]; next: number; head: number };
    for (const m of page.messages) stored.set(m.offset, m.data.n);
    if (page.messages.length === 0 || page.next >= page.head) return { stored, head: page.head };
    from = page.next;
  }
}

describe("durability levels across a crash", () => {
  let bus: BusProcess;
  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus?.stop();
  });

  const wsUrl = (topic: string, plain = false) => `${bus.url.replace(/^http/, "ws")}/v1/topics/${encodeURIComponent(topic)}/ws${plain ? "?hibernate=0" : ""}`;

  it("async: a kill -9 loses no acked message; subscribers may have seen unacked ones the log does not have", async () => {
    const topic = `async.crash.${Date.now().toString(36)}`;
    await patch(bus, topic, { durability: "async" });

    // The subscriber records what it saw, offset → n, granting credit as it goes.
    const seen = new Map<number, number>();
    const sub = await RawSocket.open(wsUrl(topic));
    sub.onFrame = (f) => {
      if (f.type !== "messages") return;
      const messages = f.messages as { offset: number; data: { n: number } }[];
      for (const m of messages) seen.set(m.offset, m.data.n);
      sub.send({ type: "credit", messages: messages.length });
    };
    sub.send({ type: "subscribe", id: 1, from: 0, credit: 10_000 });
    await sub.until((f) => f.type === "subscribed");

    // Publishers: batches of 50, up to 20 in flight each; acked offset → n.
    const acked = new Map<number, number>();
    let n = 0;
    let stop = false;
    const publishers = await Promise.all([RawSocket.open(wsUrl(topic, true)), RawSocket.open(wsUrl(topic, true))]);
    const pumping = publishers.map(async (pub) => {
      const waiting = new Map<number, number[]>();
      let id = 0;
      pub.onFrame = (f) => {
        if (f.type !== "ack") return;
        const ns = waiting.get(f.id as number)!;
        waiting.delete(f.id as number);
        ns.forEach((value, i) => acked.set((f.offset as number) + i, value));
      };
      while (!stop && !pub.closed) {
        while (waiting.size < 20 && !pub.closed) {
          const ns = Array.from({ length: 50 }, () => n++);
          waiting.set(++id, ns);
          pub.send({ type: "publish", id, messages: ns.map((value) => ({ data: { n: value } })) });
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    });
    while (seen.size < 20_000) await new Promise((r) => setTimeout(r, 5));
    await bus.restart(); // SIGKILL while both publishers are sending, then start again
    stop = true;
    await Promise.all(pumping);

    const { stored, head } = await readAll(bus, topic);
    // The log is whole from 0 to its head.
    expect(stored.size).toBe(head);
    // Every acked message is stored, at the offset it was acked with.
    for (const [offset, value] of acked) expect(stored.get(offset)).toBe(value);
    // What the subscriber saw below the head is exactly what is stored there.
    for (const [offset, value] of seen) if (offset < head) expect(stored.get(offset)).toBe(value);
    // Seen but not stored: unacked messages of the batch in flight, at most one batch.
    const lost = [...seen.keys()].filter((o) => o >= head);
    for (const o of lost) expect(acked.has(o)).toBe(false);
    expect(lost.length).toBeLessThanOrEqual(MAX_PENDING_MESSAGES);
    console.log(`async crash: ${acked.size} acked, ${seen.size} seen, ${head} stored, ${lost.length} seen but lost`);

    // A subscriber resuming after what it saw is told where the log ends when that is behind it.
    const next = Math.max(...seen.keys()) + 1;
    const again = await RawSocket.open(wsUrl(topic));
    again.send({ type: "subscribe", id: 1, from: next });
    const answer = await again.until((f) => f.id === 1);
    if (next > head) expect(answer).toMatchObject({ type: "error", code: "offset_out_of_range", head });
    else expect(answer).toMatchObject({ type: "subscribed", next });
    // Offsets continue at the head.
    const pub = await RawSocket.open(wsUrl(topic));
    pub.send({ type: "publish", id: 7, messages: [{ data: { n: -1 } }] });
    expect(await pub.until((f) => f.id === 7)).toMatchObject({ type: "ack", offset: head });
    for (const s of [sub, again, pub, ...publishers]) s.close();
  }, 180_000);

  it("memory: offsets never go back across a kill -9, and an SDK subscriber follows the topic across it", async () => {
    const topic = `memory.crash.${Date.now().toString(36)}`;
    await patch(bus, topic, { durability: "memory" });
    const client = connect(bus.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 300 } });
    const sub = client.subscribe<{ n: number }>(topic, { from: "earliest" });
    const got: { offset: number; n: number }[] = [];
    const reading = (async () => {
      for await (const m of sub) {
        got.push({ offset: m.offset, n: m.data.n });
        if (got.length === 5) return;
      }
    })();
    for (let i = 0; i < 3; i++) await client.publish(topic, { n: i });
    while (got.length < 3) await new Promise((r) => setTimeout(r, 5));
    await bus.restart();
    const first = await client.publish(topic, { n: 3 });
    await client.publish(topic, { n: 4 });
    await reading;
    // The block reserved before the crash is skipped: offsets went forward, never back.
    expect(first.offset).toBeGreaterThan(2);
    expect(first.offset).toBeLessThanOrEqual(3 + MEMORY_OFFSET_BLOCK);
    expect(got.map((m) => m.n)).toEqual([0, 1, 2, 3, 4]);
    expect(got.slice(0, 3).map((m) => m.offset)).toEqual([0, 1, 2]);
    expect(got[3]!.offset).toBe(first.offset);
    expect(got[4]!.offset).toBe(first.offset + 1);
    await client.close();
  }, 180_000);
});
