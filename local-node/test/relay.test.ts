/**
 * TCP relay over real sockets on 127.0.0.1: broadcast from a ring, remote publish into the ring,
 * slow-client warning then drop, and reconnect-and-resume without duplicates or gaps.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FULL, Ring, RelayClient, RelayError, RelayServer, type RelayEvent } from "../src/index.ts";
import { encodeHello, FrameReader, parseFrame, encodeError, RESUME_FROM_NOW, ErrorCode } from "../src/protocol.ts";
import { cleanupRings, freshName } from "./helpers.ts";

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  cleanupRings();
});

function record(seq: number, bytes = 100): Uint8Array {
  const out = new Uint8Array(bytes);
  new DataView(out.buffer).setUint32(0, seq, true);
  out.fill(seq & 0xff, 4);
  return out;
}
const seqOf = (data: Uint8Array): number => new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);

/** Resolve when `test()` holds, polling every few ms; rejects after `watchdogMs` (hang guard only). */
async function until(test: () => boolean, what: string, watchdogMs = 30_000): Promise<void> {
  const end = Date.now() + watchdogMs;
  while (!test()) {
    if (Date.now() > end) throw new Error(`watchdog: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Publish, retrying on FULL while the event loop runs (the relay drains asynchronously). */
async function publishAll(w: ReturnType<typeof Ring.create>, from: number, to: number): Promise<void> {
  for (let seq = from; seq < to; ) {
    if (w.publish(record(seq)) === FULL) await new Promise((resolve) => setImmediate(resolve));
    else seq++;
  }
}

describe("protocol", () => {
  it("round-trips control frames and rejects bad ones with a typed error", () => {
    expect(parseFrame(encodeHello(RESUME_FROM_NOW))).toEqual({ type: "hello", resumeFrom: -1 });
    expect(parseFrame(encodeHello(2 ** 40 + 8))).toEqual({ type: "hello", resumeFrom: 2 ** 40 + 8 });
    expect(parseFrame(encodeError(ErrorCode.FULL, "full", 7))).toEqual({ type: "error", code: ErrorCode.FULL, requestId: 7, message: "full" });
    const bad = encodeHello(0);
    bad[4] = 9;
    expect(parseFrame(bad)).toMatchObject({ type: "invalid" });
    const reader = new FrameReader(16);
    const two = Buffer.concat([encodeHello(1), encodeHello(2)]);
    reader.push(two.subarray(0, 5));
    expect(reader.next()).toBeNull();
    reader.push(two.subarray(5, 21));
    expect(reader.next()).toEqual({ type: "hello", resumeFrom: 1 });
    expect(reader.next()).toBeNull();
    reader.push(two.subarray(21));
    expect(reader.next()).toEqual({ type: "hello", resumeFrom: 2 });
    reader.push(Buffer.from([3, 0, 0, 0, 1, 0, 1, 0]));
    expect(reader.next()).toMatchObject({ type: "invalid" });
  });
});

describe("RelayServer and RelayClient", () => {
  it("broadcasts every ring record, in order, to two TCP clients", async () => {
    const ring = freshName("relay");
    const w = Ring.create(ring, { capacity: 1 << 16 });
    closers.push(() => w.close());
    const server = await RelayServer.listen({ ring, port: 0 });
    closers.push(() => server.close());
    const seen: number[][] = [[], []];
    const clients = seen.map((list) => RelayClient.connect({ port: server.port, onRecord: (data) => list.push(seqOf(data)) }));
    for (const c of clients) closers.push(() => c.close());
    await Promise.all(clients.map((c) => c.ready()));
    await publishAll(w, 0, 5000);
    await until(() => seen.every((s) => s.length === 5000), "clients got 5000 records");
    for (const s of seen) expect(s).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("lets a remote client publish into the ring when the relay owns the producer", async () => {
    const ring = freshName("rpub");
    const w = Ring.create(ring, { capacity: 1 << 16 });
    closers.push(() => w.close());
    const local = Ring.open(ring);
    closers.push(() => local.close());
    const server = await RelayServer.listen({ ring, port: 0, writer: w });
    closers.push(() => server.close());
    const echoed: number[] = [];
    const client = RelayClient.connect({ port: server.port, onRecord: (data) => echoed.push(seqOf(data)) });
    closers.push(() => client.close());
    await client.ready();
    const last = await client.publish([record(1), record(2), record(3)], 5);
    const got = local.pollBatch(10);
    expect(got.map((r) => [seqOf(r.data), r.type])).toEqual([
      [1, 5],
      [2, 5],
      [3, 5],
    ]);
    expect(got[2]!.offset).toBe(last);
    await until(() => echoed.length === 3, "the relay broadcast the published records back");
  });

  it("refuses remote publishing when the relay has no producer", async () => {
    const ring = freshName("nopub");
    const w = Ring.create(ring, { capacity: 1 << 16 });
    closers.push(() => w.close());
    const server = await RelayServer.listen({ ring, port: 0 });
    closers.push(() => server.close());
    const client = RelayClient.connect({ port: server.port, onRecord: () => {} });
    closers.push(() => client.close());
    await client.ready();
    const error = await client.publish([record(1)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RelayError);
    expect((error as RelayError).code).toBe("RELAY_NOT_PRODUCER");
  });

  it("warns a slow client, then drops it when its queue passes the limit", async () => {
    const ring = freshName("slow");
    const w = Ring.create(ring, { capacity: 1 << 20 });
    closers.push(() => w.close());
    const events: RelayEvent[] = [];
    const server = await RelayServer.listen({ ring, port: 0, maxQueueBytes: 512 * 1024, warnQueueBytes: 128 * 1024, onEvent: (e) => events.push(e) });
    closers.push(() => server.close());
    // A raw socket that says HELLO and then never reads: the kernel buffers fill, then Node's.
    const socket = connect({ host: "127.0.0.1", port: server.port });
    closers.push(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.pause();
    socket.write(encodeHello(RESUME_FROM_NOW));
    await until(() => server.clientCount === 1 && events.some((e) => e.type === "connect"), "server saw the client");
    await new Promise((resolve) => setTimeout(resolve, 20)); // let HELLO arrive
    let seq = 0;
    const watchdog = Date.now() + 60_000;
    while (!events.some((e) => e.type === "drop") && Date.now() < watchdog) {
      await publishAll(w, seq, seq + 2000);
      seq += 2000;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const kinds = events.map((e) => e.type);
    expect(kinds).toContain("warn");
    expect(kinds).toContain("drop");
    expect(kinds.indexOf("warn")).toBeLessThan(kinds.indexOf("drop"));
    expect(server.stats.drops).toBe(1);
  });

  it("resumes from the last offset after the socket drops, without duplicates or gaps", async () => {
    const ring = freshName("resume");
    const w = Ring.create(ring, { capacity: 1 << 20 });
    closers.push(() => w.close());
    const events: RelayEvent[] = [];
    const server = await RelayServer.listen({ ring, port: 0, maxQueueBytes: 256 * 1024, onEvent: (e) => events.push(e) });
    closers.push(() => server.close());
    const seen: number[] = [];
    const states: string[] = [];
    let warned = 0;
    const client = RelayClient.connect({
      port: server.port,
      onRecord: (data) => seen.push(seqOf(data)),
      onWarn: () => warned++,
      onState: (s) => states.push(s),
      reconnect: { initialMs: 10, maxMs: 100 },
    });
    closers.push(() => client.close());
    await client.ready();
    await publishAll(w, 0, 1000);
    await until(() => seen.length === 1000, "first 1000 records");
    // Stop reading until the server drops us as slow.
    client.pause();
    let seq = 1000;
    const watchdog = Date.now() + 60_000;
    while (!events.some((e) => e.type === "drop") && Date.now() < watchdog) {
      await publishAll(w, seq, seq + 1000);
      seq += 1000;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(events.some((e) => e.type === "drop")).toBe(true);
    client.resume();
    await publishAll(w, seq, seq + 1000);
    seq += 1000;
    await until(() => seen.length >= seq, `client caught up to ${seq}`);
    expect(client.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(states).toContain("reconnecting");
    expect(client.stats.gaps).toBe(0);
    expect(seen).toEqual(Array.from({ length: seq }, (_, i) => i));
  });

  it("reports a GAP when the resume point is older than what the relay kept", async () => {
    const ring = freshName("gap");
    const w = Ring.create(ring, { capacity: 1 << 16 });
    closers.push(() => w.close());
    const server = await RelayServer.listen({ ring, port: 0, replayBytes: 1 });
    closers.push(() => server.close());
    const first = RelayClient.connect({ port: server.port, onRecord: () => {} });
    closers.push(() => first.close());
    await first.ready();
    await publishAll(w, 0, 500);
    await until(() => first.stats.records === 500, "first client got 500");
    const gaps: [number, number][] = [];
    const late = RelayClient.connect({ port: server.port, resumeFrom: 0, onRecord: () => {}, onGap: (from, to) => gaps.push([from, to]) });
    closers.push(() => late.close());
    await late.ready();
    await until(() => gaps.length === 1, "gap reported");
    expect(gaps[0]![0]).toBe(0);
    expect(gaps[0]![1]).toBeGreaterThan(0);
  });
});
