/** Pure units of the SDK: backoff, message encoding, token placement. No bus needed. */
import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "../src/backoff.ts";
import { base64ToBytes, bytesToBase64, decodeMessage, encodeMessage } from "../src/message.ts";
import { wireFrom } from "../src/subscription.ts";
import { webSocketUrlWithToken } from "../src/transport.ts";

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
