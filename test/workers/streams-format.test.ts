/** Pure helpers of the Durable Streams mapping (objects/stream-format.ts, protocol/stored-message.ts). */
import { describe, expect, it } from "vitest";
import { bodyAsBytes, bodyAsJson } from "../../protocol/stored-message.ts";
import {
  encodeOffset,
  flattenJsonBody,
  isJsonContentType,
  isTextContentType,
  nextCursor,
  parseOffset,
  sseData,
  CURSOR_EPOCH_MS,
  CURSOR_INTERVAL_MS,
} from "../../objects/stream-format.ts";

describe("offset tokens", () => {
  it("round-trip and sort as strings the way the integers sort", () => {
    const offsets = [0, 1, 9, 10, 99, 100, 123_456_789, Number.MAX_SAFE_INTEGER];
    const tokens = offsets.map(encodeOffset);
    expect([...tokens].sort()).toEqual(tokens);
    for (const [i, t] of tokens.entries()) expect(parseOffset(t)).toEqual({ kind: "at", next: offsets[i] });
    expect(encodeOffset(42)).toBe("0000000000000042_0000000000000000");
  });

  it("accept the sentinels and refuse anything this server did not mint", () => {
    expect(parseOffset("-1")).toEqual({ kind: "start" });
    expect(parseOffset("now")).toEqual({ kind: "now" });
    for (const bad of ["", "0", "42", "0,1", "0000000000000042_0000000000000001", "9999999999999999_0000000000000000", "abc"]) {
      expect(parseOffset(bad)).toBeNull();
    }
  });
});

describe("JSON mode", () => {
  it("flattens one level of a top-level array and keeps other values whole", () => {
    expect(flattenJsonBody('{"a":1}')).toEqual({ messages: ['{"a":1}'] });
    expect(flattenJsonBody("[[1,2],[3]]")).toEqual({ messages: ["[1,2]", "[3]"] });
    expect(flattenJsonBody("[[[1]]]")).toEqual({ messages: ["[[1]]"] });
    expect(flattenJsonBody("[]")).toEqual({ error: "empty_array" });
    expect(flattenJsonBody("{nope")).toEqual({ error: "invalid_json" });
  });

  it("reads a stored message as its data, or a bytes message as its base64 text", () => {
    expect(bodyAsJson('"data":{"a":1}')).toBe('{"a":1}');
    expect(bodyAsJson('"key":"k","data":[1]')).toBe("[1]");
    expect(bodyAsJson('"bytes":"AAE="')).toBe('"AAE="');
    expect([...bodyAsBytes('"bytes":"AAE="')]).toEqual([0, 1]);
    expect(new TextDecoder().decode(bodyAsBytes('"data":{"a":1}'))).toBe('{"a":1}');
  });

  it("classifies content types without their parameters", () => {
    expect(isJsonContentType("Application/JSON; charset=utf-8")).toBe(true);
    expect(isJsonContentType("application/ndjson")).toBe(false);
    expect(isTextContentType("text/plain")).toBe(true);
    expect(isTextContentType("application/octet-stream")).toBe(false);
  });
});

describe("cursors and SSE", () => {
  it("never hands back a cursor at or below the one the client echoed", () => {
    const now = CURSOR_EPOCH_MS + 1000 * CURSOR_INTERVAL_MS + 5;
    expect(nextCursor(undefined, now)).toBe("1000");
    expect(nextCursor("900", now)).toBe("1000");
    for (let i = 0; i < 50; i++) expect(Number(nextCursor("1000", now))).toBeGreaterThan(1000);
  });

  it("puts every line of a payload on its own data: line, so no payload can end an event", () => {
    expect(sseData("a\r\n\r\nevent: x\rb\nc")).toBe("data:a\ndata:\ndata:event: x\ndata:b\ndata:c\n\n");
  });
});
