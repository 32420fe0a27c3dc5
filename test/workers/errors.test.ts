/**
 * Bad input gets an error with a stable code, the socket stays usable, and nothing stored
 * changes. One case per error code the core produces (docs/protocol.md, "Error codes").
 */
import { describe, expect, it } from "vitest";
import type { ErrorFrame } from "../../protocol/frames.ts";
import { freshTopic, gatewayFetch, numbered, openSocket, type TestSocket } from "./helpers.ts";

async function lastError(s: TestSocket, count: number): Promise<ErrorFrame> {
  await s.until(() => s.frames.filter((f) => f.type === "error").length >= count, `error #${count}`);
  return s.frames.filter((f): f is ErrorFrame => f.type === "error")[count - 1]!;
}

async function readAll(topic: string) {
  const res = await gatewayFetch(`/v1/topics/${topic}/messages?from=0&limit=1000`);
  return ((await res.json()) as { messages: { offset: number; data?: unknown }[] }).messages;
}

describe("WebSocket error frames", () => {
  it("answers each malformed frame with a coded error and keeps the socket and the log intact", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish(numbered(3));
    const cases: [string | ArrayBuffer, string][] = [
      ["{not json", "bad_frame"],
      ["[1,2,3]", "bad_frame"],
      ['"a string"', "bad_frame"],
      ['{"id":1}', "bad_frame"],
      [new TextEncoder().encode('{"type":"publish"}').buffer as ArrayBuffer, "bad_frame"],
      ['{"type":"teleport","id":9}', "unknown_type"],
      ['{"type":"publish","id":1,"messages":[]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":"x"}', "invalid_field"],
      ['{"type":"publish","id":-1,"messages":[{"data":1}]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":[{"data":1,"bytes":"AA=="}]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":[{}]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":[{"bytes":"not base64!"}]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":[{"data":1,"headers":{"a":1}}]}', "invalid_field"],
      ['{"type":"publish","id":1,"messages":[{"data":1,"key":7}]}', "invalid_field"],
      ['{"type":"subscribe","id":1,"from":-5}', "invalid_field"],
      ['{"type":"subscribe","id":1,"from":"yesterday"}', "invalid_field"],
      ['{"type":"subscribe","id":1,"from":1e300}', "invalid_field"],
      ['{"type":"credit","messages":0}', "invalid_field"],
      ['{"type":"credit","messages":5}', "not_subscribed"],
      ['{"type":"unsubscribe","id":3}', "not_subscribed"],
    ];
    for (let i = 0; i < cases.length; i++) {
      const [frame, code] = cases[i]!;
      s.sendRaw(frame);
      const error = await lastError(s, i + 1);
      expect(error.code, `frame ${String(frame)}`).toBe(code);
      expect(typeof error.message).toBe("string");
    }
    // Still usable, and the log holds exactly what was valid.
    expect(await s.publish([{ data: "after" }])).toMatchObject({ type: "ack", offset: 3 });
    expect((await readAll(topic)).map((m) => m.data)).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }, "after"]);
  });

  it("echoes the frame id on errors so clients can match them", async () => {
    const s = await openSocket(freshTopic());
    s.sendRaw('{"type":"publish","id":42,"messages":[{"nope":1}]}');
    expect(await s.answer(42)).toMatchObject({ type: "error", id: 42, code: "invalid_field" });
  });

  it("refuses oversized messages and batches without storing any of the batch", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    const big = "x".repeat(1024 * 1024); // 1 MiB + 2 quote bytes of JSON: over the default limit
    expect(await s.publish([{ data: 1 }, { data: big }])).toMatchObject({ type: "error", code: "message_too_large" });
    expect(await s.publish(numbered(1001))).toMatchObject({ type: "error", code: "batch_too_large" });
    expect(await s.publish([{ data: "ok" }])).toMatchObject({ type: "ack", offset: 0 });
    expect(await readAll(topic)).toHaveLength(1);
  });

  it("allows one subscription per socket", async () => {
    const s = await openSocket(freshTopic());
    await s.subscribe("latest");
    expect(await s.subscribe(0)).toMatchObject({ type: "error", code: "already_subscribed" });
  });
});

describe("idempotent producers", () => {
  it("stores a resent batch once and answers with the first copy's offsets", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    const producer = { id: "p-1", seq: 0 };
    expect(await s.publish(numbered(2), producer)).toMatchObject({ type: "ack", offset: 0, count: 2 });
    expect(await s.publish(numbered(2, 2), { id: "p-1", seq: 1 })).toMatchObject({ offset: 2, count: 2 });
    // A reconnecting producer resends seq 1 on a new socket.
    const again = await openSocket(topic);
    expect(await again.publish(numbered(2, 2), { id: "p-1", seq: 1 })).toMatchObject({ type: "ack", offset: 2, count: 2, duplicate: true });
    expect(await again.publish(numbered(1, 4), { id: "p-1", seq: 2 })).toMatchObject({ type: "ack", offset: 4, count: 1 });
    expect(await readAll(topic)).toHaveLength(5);
  });

  it("deduplicates a resend that arrives while the first copy is still waiting to commit", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic, `/v1/topics/${topic}/ws?hibernate=0`);
    // A first publish commits at once on the idle topic; the two right behind it then wait for
    // the group commit together, so the resend finds its first copy still waiting.
    const warm = s.publish(numbered(1));
    const a = s.publish(numbered(1), { id: "p-2", seq: 0 });
    const b = s.publish(numbered(1), { id: "p-2", seq: 0 });
    const [, first, second] = await Promise.all([warm, a, b]);
    expect(first).toMatchObject({ offset: 1, count: 1 });
    expect(second).toMatchObject({ offset: 1, count: 1, duplicate: true });
    expect(await readAll(topic)).toHaveLength(2);
  });

  it("refuses a skipped sequence number with sequence_gap naming the expected one", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic);
    await s.publish(numbered(1), { id: "p-3", seq: 7 });
    expect(await s.publish(numbered(1), { id: "p-3", seq: 9 })).toMatchObject({ type: "error", code: "sequence_gap", expected: 8 });
    expect(await readAll(topic)).toHaveLength(1);
  });
});

describe("HTTP errors", () => {
  it("uses one JSON error shape with the right status for each code", async () => {
    const topic = freshTopic();
    const cases: [string, RequestInit | undefined, number, string][] = [
      [`/v1/topics/${topic}/messages`, { method: "POST", body: "{oops" }, 400, "bad_frame"],
      [`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ messages: [{ data: 1, bytes: "AA==" }] }) }, 400, "invalid_field"],
      [`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: "x".repeat(1024 * 1024) }) }, 413, "message_too_large"],
      [`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ messages: numbered(1001) }) }, 413, "batch_too_large"],
      [`/v1/topics/${topic}/messages?from=7`, undefined, 416, "offset_out_of_range"],
      [`/v1/topics/${topic}/messages?from=-1`, undefined, 400, "invalid_field"],
      [`/v1/topics/${topic}/messages?limit=0`, undefined, 400, "invalid_field"],
      [`/v1/topics/${topic}/messages?since=soon`, undefined, 400, "invalid_field"],
      [`/v1/topics/bad..name/messages`, undefined, 400, "invalid_topic"],
      [`/v1/topics/${"x".repeat(201)}`, undefined, 400, "invalid_topic"],
      [`/v1/topics/${topic}/ws`, undefined, 426, "upgrade_required"],
      [`/v1/topics/${topic}/messages`, { method: "DELETE" }, 405, "method_not_allowed"],
      [`/v1/nowhere`, undefined, 404, "not_found"],
      [`/v1/topics/${topic}`, { method: "PATCH", body: JSON.stringify({ retention: { maxMessages: -1 } }) }, 400, "invalid_field"],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await gatewayFetch(path, init);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect({ path, status: res.status, code: body.error.code }).toEqual({ path, status, code });
      expect(body.error.message.length).toBeGreaterThan(0);
    }
    expect(await readAll(topic)).toHaveLength(0);
  });

  it("tells a refused WebSocket upgrade why, in an error frame and a close code", async () => {
    const s = await openSocket("bad..name", "/v1/topics/bad..name/ws");
    const error = await s.frame("error");
    expect(error.code).toBe("invalid_topic");
    await s.until(() => s.closed !== null, "close");
    expect(s.closed?.code).toBe(4400);
  });

  it("refuses a protocol version it does not speak", async () => {
    const topic = freshTopic();
    const s = await openSocket(topic, `/v1/topics/${topic}/ws?v=2`);
    expect(await s.frame("error")).toMatchObject({ code: "unsupported_version" });
    await s.until(() => s.closed !== null, "close");
    expect(s.closed?.code).toBe(4400);
    const ok = await openSocket(topic, `/v1/topics/${topic}/ws?v=1`);
    expect(await ok.frame("welcome")).toMatchObject({ version: 1 });
  });
});
