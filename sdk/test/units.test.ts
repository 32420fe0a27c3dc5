/**
 * Pure units of the SDK: backoff, message encoding, token placement, rate-limit spacing; and the
 * publish pipe against a scripted socket, for answers a real bus cannot be made to give on cue.
 * No bus needed.
 */
import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "../src/backoff.ts";
import { connect } from "../src/client.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { base64ToBytes, bytesToBase64, decodeMessage, encodeMessage, jsonNestsDeeperThan } from "../src/message.ts";
import { MAX_SPACING_MS, SendSpacing, SPACING_HOLD_MS } from "../src/pipe.ts";
import { MAX_DATA_DEPTH, nestsDeeperThan, parseServerFrame } from "../../protocol/frames.ts";
import { wireFrom } from "../src/subscription.ts";
import { webSocketUrlWithToken, type SocketLike, type Transport } from "../src/transport.ts";

describe("backoffDelayMs", () => {
  it("doubles from the initial delay, is capped, and jitters within [half, full]", () => {
    const opts = { initialDelayMs: 100, maxDelayMs: 5000 };
    expect(backoffDelayMs(0, opts, () => 0)).toBe(50);
    expect(backoffDelayMs(0, opts, () => 1)).toBe(100);
    expect(backoffDelayMs(3, opts, () => 1)).toBe(800);
    expect(backoffDelayMs(30, opts, () => 1)).toBe(5000);
    expect(backoffDelayMs(1000, opts, () => 0)).toBe(2500);
  });
});

describe("message encoding", () => {
  it("encodes JSON data with key and headers, measuring UTF-8 payload bytes", () => {
    const m = encodeMessage({ a: "é" }, { key: "k", headers: { h: "v" } });
    expect(JSON.parse(m.json)).toEqual({ data: { a: "é" }, key: "k", headers: { h: "v" } });
    expect(m.size).toBe(new TextEncoder().encode(JSON.stringify({ a: "é" })).length);
  });

  it("sends Uint8Array payloads as base64 bytes and decodes them back", () => {
    const bytes = new Uint8Array(70_000).map((_, i) => i % 256);
    const m = encodeMessage(bytes, undefined);
    expect(m.size).toBe(70_000);
    const wire = JSON.parse(m.json) as { bytes: string };
    expect(base64ToBytes(wire.bytes)).toEqual(bytes);
    expect(bytesToBase64(new Uint8Array([255, 0]))).toBe("/wA=");
    expect(decodeMessage({ offset: 3, time: 9, bytes: "/wA=" })).toEqual({ offset: 3, time: 9, headers: {}, data: new Uint8Array([255, 0]) });
  });

  it("refuses what cannot be JSON, and over-long keys", () => {
    expect(() => encodeMessage(undefined, undefined)).toThrow(/cannot be sent as JSON/);
    expect(() => encodeMessage(1, { key: "k".repeat(257) })).toThrow(/key/);
  });

  /** The error encodeMessage throws for `data`, or null. */
  function refusal(data: unknown): unknown {
    try {
      encodeMessage(data, undefined);
      return null;
    } catch (error) {
      return error;
    }
  }
  const nested = (levels: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = i % 2 ? { a: v } : [v];
    return v;
  };

  it("refuses data nested deeper than MAX_DATA_DEPTH with too_deep, at any depth, and accepts the limit itself", () => {
    expect(refusal(nested(MAX_DATA_DEPTH))).toBeNull();
    for (const levels of [MAX_DATA_DEPTH + 1, 2_000, 1_000_000]) {
      // 1,000,000 levels: JSON.stringify itself overflows the stack (a RangeError); still too_deep.
      const error = refusal(nested(levels));
      expect(error).toBeInstanceOf(DovetailError);
      expect(error).toMatchObject({ code: "too_deep" });
    }
  });

  it("measures depth on the JSON text, as the topic does: brackets in strings do not count, toJSON does", () => {
    expect(jsonNestsDeeperThan(JSON.stringify({ s: "[[[[", t: '\\"{{{{' }), 1)).toBe(false);
    expect(jsonNestsDeeperThan(JSON.stringify([{ a: [1] }]), 2)).toBe(true);
    expect(jsonNestsDeeperThan(JSON.stringify([{ a: [1] }]), 3)).toBe(false);
    expect(refusal({ text: "[".repeat(10_000) })).toBeNull();
    // A tree with parent links, serialized through toJSON: the value is a cycle (endless depth to
    // a walk of the object), its JSON three levels deep. The topic would store it; so do we.
    const root: { children: unknown[]; toJSON(): unknown } = { children: [], toJSON: () => ({ children: root.children }) };
    const child = { parent: root, toJSON: () => ({ leaf: true }) };
    root.children.push(child);
    expect(nestsDeeperThan(root, MAX_DATA_DEPTH)).toBe(true);
    expect(refusal(root)).toBeNull();
    const wrapsDeep = { toJSON: () => nested(500) };
    expect(refusal(wrapsDeep)).toMatchObject({ code: "too_deep" });
  });

  it("turns every other failure to serialize into invalid_field, never a raw TypeError", () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const data of [
      cycle,
      { n: 10n },
      { toJSON: () => undefined },
      {
        toJSON: () => {
          throw new Error("nope");
        },
      },
    ]) {
      const error = refusal(data);
      expect(error).toBeInstanceOf(DovetailError);
      expect(error).toMatchObject({ code: "invalid_field" });
    }
  });
});

describe("SendSpacing", () => {
  it("adds each refusal's wait to the spacing, up to a cap", () => {
    const s = new SendSpacing();
    expect(s.current(0)).toBe(0);
    s.refused(150, 1_000);
    expect(s.current(1_000)).toBe(150);
    s.refused(60, 1_500);
    expect(s.current(1_500)).toBe(210);
    s.refused(0, 1_600); // a wait of 0 still counts as 1 ms
    expect(s.current(1_600)).toBe(211);
    s.refused(60_000, 1_700);
    expect(s.current(1_700)).toBe(MAX_SPACING_MS);
  });

  it("halves every SPACING_HOLD_MS without a refusal, and ends below 1 ms", () => {
    const s = new SendSpacing();
    s.refused(8, 0);
    expect(s.current(SPACING_HOLD_MS - 1)).toBe(8);
    expect(s.current(SPACING_HOLD_MS)).toBe(4);
    expect(s.current(3 * SPACING_HOLD_MS)).toBe(1);
    expect(s.current(4 * SPACING_HOLD_MS)).toBe(0);
    s.refused(3, 4 * SPACING_HOLD_MS);
    expect(s.current(4 * SPACING_HOLD_MS)).toBe(3);
  });
});

describe("subscribe `from`", () => {
  it("maps offsets, names, dates and times to the wire form", () => {
    expect(wireFrom(undefined)).toBe("latest");
    expect(wireFrom(7)).toBe(7);
    expect(wireFrom("earliest")).toBe("earliest");
    expect(wireFrom(new Date(1234))).toEqual({ time: 1234 });
    expect(wireFrom({ time: 5 })).toEqual({ time: 5 });
  });
});

describe("webSocketUrlWithToken", () => {
  it("puts the token in the query string, and leaves the URL alone without one", () => {
    expect(webSocketUrlWithToken("ws://h:1/v1/topics/a%2Fb/ws", "t k")).toBe("ws://h:1/v1/topics/a%2Fb/ws?token=t+k");
    expect(webSocketUrlWithToken("ws://h/x", undefined)).toBe("ws://h/x");
  });
});

// -------------------------------------------------------------------------------------------
// The publish pipe against a scripted socket: the test plays the topic and answers each frame.

interface SentFrame {
  type: string;
  id: number;
  producer: { id: string; seq: number };
  messages: { data: unknown }[];
  at: number;
}

class ScriptedSocket implements SocketLike {
  readyState = 1;
  readonly sent: SentFrame[] = [];
  readonly #listeners: Record<string, ((event: never) => void)[]> = { message: [], close: [], error: [] };
  send(data: string): void {
    this.sent.push({ ...(JSON.parse(data) as SentFrame), at: Date.now() });
  }
  close(): void {
    this.readyState = 3;
  }
  addEventListener(type: string, listener: (event: never) => void): void {
    this.#listeners[type]!.push(listener);
  }
  answer(frame: Record<string, unknown>): void {
    for (const l of this.#listeners.message!) (l as (e: { data: string }) => void)({ data: JSON.stringify(frame) });
  }
  /** Ack frame `f` at `offset`. */
  ack(f: SentFrame, offset: number): void {
    this.answer({ type: "ack", id: f.id, offset, count: f.messages.length });
  }
}

const WELCOME = {
  type: "welcome",
  version: 1,
  topic: "t",
  head: 0,
  earliest: 0,
  limits: { maxMessageBytes: 1 << 20, maxBatchMessages: 1000, maxBatchBytes: 1 << 23 },
};

/** A bus whose one publishing socket is scripted by the test. */
function scriptedBus() {
  let socket: ScriptedSocket | null = null;
  const transport: Transport = async () => {
    const s = new ScriptedSocket();
    socket = s;
    setTimeout(() => s.answer(WELCOME), 0); // after the link has added its listeners
    return s;
  };
  const bus = connect("http://127.0.0.1:9", { transport, pingIntervalMs: 0 });
  return { bus, socket: () => socket! };
}

async function until(predicate: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("frames from a newer server", () => {
  it("parses a frame of an unknown type as `unknown`, and a known type with wrong fields as bad_frame", () => {
    expect(parseServerFrame('{"type":"presence","who":"a"}')).toEqual({ ok: true, frame: { type: "unknown", name: "presence" } });
    expect(parseServerFrame('{"type":"ack","id":"x"}')).toMatchObject({ ok: false });
  });

  it("a publish completes although the server sends frames of a type this client does not know", async () => {
    const { bus, socket } = scriptedBus();
    const publishing = bus.publish("t", 1);
    await until(() => socket()?.sent.length === 1, "the frame");
    socket().answer({ type: "presence", agents: 3 });
    socket().ack(socket().sent[0]!, 7);
    expect(await publishing).toEqual({ offset: 7 });
    await bus.close({ force: true });
  });
});

describe("publish pipe (scripted topic)", () => {
  it("after rate_limited: waits, resends one frame at a time until one is acked, then the window again, spaced", async () => {
    const { bus, socket } = scriptedBus();
    const pub = bus.publisher("t", { lingerMs: 0, maxBatch: 1, maxInFlight: 32 });
    const sends = Array.from({ length: 10 }, (_, i) => pub.send(i));

    // A new producer: one frame until the topic has acked one.
    await until(() => socket()?.sent.length === 1, "the first frame");
    await sleep(20);
    expect(socket().sent).toHaveLength(1);
    socket().ack(socket().sent[0]!, 0);
    await until(() => socket().sent.length === 10, "the rest of the window");

    // The topic refuses seq 1 with rate_limited; seqs 2..9 behind it get sequence_gap.
    const window = socket().sent.slice(1);
    expect(window.map((f) => f.producer.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const refusedAt = Date.now();
    socket().answer({ type: "error", id: window[0]!.id, code: "rate_limited", message: "slow down", retryAfterMs: 40 });
    for (const f of window.slice(1)) socket().answer({ type: "error", id: f.id, code: "sequence_gap", message: "gap", expected: 1 });

    // One frame after the wait (seq 1 again), and nothing more until it is answered.
    await until(() => socket().sent.length === 11, "the resend");
    const probe = socket().sent[10]!;
    expect(probe.at - refusedAt).toBeGreaterThanOrEqual(39);
    expect(probe.producer.seq).toBe(1);
    expect(probe.messages).toMatchObject([{ data: 1 }]); // toMatchObject: a traceparent header may be there (trace.ts)
    await sleep(100);
    expect(socket().sent).toHaveLength(11);

    // Admitted: frames flow again without waiting for answers, but spaced by the learned 40 ms.
    socket().ack(probe, 1);
    await until(() => socket().sent.length === 13, "two more frames, unanswered");
    const [a, b] = socket().sent.slice(11);
    expect([a!.producer.seq, b!.producer.seq]).toEqual([2, 3]);
    expect(a!.at - probe.at).toBeGreaterThanOrEqual(39);
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(39);

    // Answer everything as it comes: every send resolves with its own offset, each seq sent once after the refusal.
    for (let acked = 11; acked < 19; ) {
      await until(() => socket().sent.length > acked, "the next frame", 5_000);
      const f = socket().sent[acked]!;
      socket().ack(f, f.producer.seq);
      acked++;
    }
    expect(await Promise.all(sends)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(
      socket()
        .sent.slice(10)
        .map((f) => f.producer.seq),
    ).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await bus.close({ force: true });
  }, 15_000);

  it("an error frame for a publish (storage_full) rejects exactly that frame's sends; later frames are renumbered and resolve", async () => {
    const { bus, socket } = scriptedBus();
    const pub = bus.publisher("t", { lingerMs: 0, maxBatch: 2 });
    const results = Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => pub.send(i)));

    await until(() => socket()?.sent.length === 1, "the first frame");
    socket().ack(socket().sent[0]!, 0); // messages 0, 1
    await until(() => socket().sent.length === 3, "two more frames");
    const [full, behind] = socket().sent.slice(1);
    expect(full!.messages).toMatchObject([{ data: 2 }, { data: 3 }]);
    socket().answer({ type: "error", id: full!.id, code: "storage_full", message: "the disk is full" });
    socket().answer({ type: "error", id: behind!.id, code: "sequence_gap", message: "gap", expected: full!.producer.seq });

    await until(() => socket().sent.length === 4, "the later frame, renumbered");
    const again = socket().sent[3]!;
    expect(again.messages).toMatchObject([{ data: 4 }, { data: 5 }]);
    expect(again.producer.seq).toBe(full!.producer.seq);
    socket().ack(again, 2);

    const settled = await results;
    expect(settled.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected", "fulfilled", "fulfilled"]);
    for (const r of settled.filter((r) => r.status === "rejected")) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DovetailError);
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: "storage_full", message: "the disk is full" });
    }
    expect(settled.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([0, 1, 2, 3]);
    await bus.close({ force: true });
  }, 15_000);
});
