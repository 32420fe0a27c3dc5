/**
 * Durable Streams (HTTP) wire helpers shared by the gateway (workers/routes/streams.ts) and the
 * topic object: offsets, ETags, content types, JSON-mode flattening, and how stored messages
 * become the bytes of a read. Pure functions, no runtime imports, so they are unit-testable
 * anywhere.
 *
 * Offsets (docs/decisions/007-streams-offsets.md): the DS offset of a position is the Dovetail
 * offset of the next message there, as 16 zero-padded decimal digits, then `_`, then 16 zeros
 * (a reserved sub-position, kept so the token has the same shape as the reference server's).
 * `0000000000000042_0000000000000000` is "after message 41, before message 42" on both paths.
 */
import { base64ToBytes, bytesToBase64 } from "../protocol/base64.ts";
import { MAX_DATA_DEPTH, nestsDeeperThan } from "../protocol/frames.ts";
import type { ParsedOffset } from "../protocol/stream-rpc.ts";

export { base64ToBytes, bytesToBase64 };

/** Width of each half of an offset token; 16 digits cover every safe JavaScript integer. */
export const OFFSET_DIGITS = 16;
const ZERO_HALF = "0".repeat(OFFSET_DIGITS);
const OFFSET_TOKEN = /^(\d{16})_(\d{16})$/;

/** The DS offset token for the position before Dovetail message `next`. */
export function encodeOffset(next: number): string {
  return `${String(next).padStart(OFFSET_DIGITS, "0")}_${ZERO_HALF}`;
}

/**
 * Parse an offset token from a request. Returns `null` for anything malformed (the caller answers
 * 400): tokens this server did not mint, a non-zero reserved half, or a value past 2^53.
 *
 * @example
 * parseOffset("-1")                                  // { kind: "start" }
 * parseOffset("0000000000000003_0000000000000000")   // { kind: "at", next: 3 }
 */
export function parseOffset(raw: string): ParsedOffset | null {
  if (raw === "-1") return { kind: "start" };
  if (raw === "now") return { kind: "now" };
  const m = OFFSET_TOKEN.exec(raw);
  if (!m || m[2] !== ZERO_HALF) return null;
  const next = Number(m[1]);
  return Number.isSafeInteger(next) ? { kind: "at", next } : null;
}

/**
 * The `ETag` of a read from `start` (null: from the stream start, `offset=-1`) to `next`, and of
 * HEAD (from the start to the committed head). `base` names the stream's incarnation, so a stream
 * deleted and created again never matches an old tag; `:c` marks the end of a closed stream.
 *
 * @example
 * streamEtag(0, null, 3, false) // '"0:-1:0000000000000003_0000000000000000"'
 */
export function streamEtag(base: number, start: number | null, next: number, closed: boolean): string {
  return `"${base}:${start === null ? "-1" : encodeOffset(start)}:${encodeOffset(next)}${closed ? ":c" : ""}"`;
}

/** Media type without parameters, lower-cased: `Application/JSON; charset=utf-8` → `application/json`. */
export function normalizeContentType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** JSON mode (protocol section 9.1): message boundaries kept, reads return a JSON array. */
export function isJsonContentType(contentType: string): boolean {
  return normalizeContentType(contentType) === "application/json";
}

/** SSE sends these as UTF-8 text; everything else is base64 (protocol section 5.8). */
export function isTextContentType(contentType: string): boolean {
  const t = normalizeContentType(contentType);
  return t.startsWith("text/") || t === "application/json";
}

/** A syntactically plausible media type (`type/subtype`), as the reference server checks it. */
export function isValidContentType(contentType: string): boolean {
  return /^[\w.+-]+\/[\w.+-]+/.test(contentType.trim());
}

/**
 * Split a JSON-mode append body into one JSON text per message: a top-level array is flattened
 * one level (protocol 9.1.2), any other value is one message. An empty array is reported, not
 * refused: it is an error on POST but creates an empty stream on PUT (protocol 9.1.3).
 *
 * @example
 * flattenJsonBody('[{"a":1},[2]]') // { messages: ['{"a":1}', '[2]'] }
 */
export function flattenJsonBody(text: string): { messages: string[] } | { error: "invalid_json" | "empty_array" | "too_deep" } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: "invalid_json" };
  }
  if (!Array.isArray(value)) return nestsDeeperThan(value, MAX_DATA_DEPTH) ? { error: "too_deep" } : { messages: [JSON.stringify(value)] };
  if (value.length === 0) return { error: "empty_array" };
  // Each element becomes one message's data: the same depth limit as every other publish path.
  if (value.some((v) => nestsDeeperThan(v, MAX_DATA_DEPTH))) return { error: "too_deep" };
  return { messages: value.map((v) => JSON.stringify(v === undefined ? null : v)) };
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The protocol's integer headers (`Stream-TTL`, `Stream-Fork-Sub-Offset`, `Producer-Epoch`,
 * `Producer-Seq`): decimal, no sign, no leading zeros, no fraction or exponent, at most 2^53-1.
 *
 * @example
 * parseNonNegativeInt("3600")  // 3600
 * parseNonNegativeInt("03600") // null
 */
export function parseNonNegativeInt(raw: string): number | null {
  if (!/^(0|[1-9]\d*)$/.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

/** Cursor epoch and interval of protocol section 10.1 (the reference server's defaults). */
export const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);
export const CURSOR_INTERVAL_MS = 20_000;

/**
 * The `Stream-Cursor` for a live response: the current 20 s interval number, or, when the client
 * echoed a cursor at or ahead of that, the client's plus 1-180 intervals (1-3600 s of jitter) so
 * cursors never go backwards and a CDN never loops on one cached answer.
 */
export function nextCursor(clientCursor: string | undefined, now = Date.now()): string {
  const current = Math.floor((now - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS);
  if (!clientCursor || !/^\d{1,15}$/.test(clientCursor)) return String(current);
  const client = Number(clientCursor);
  if (client < current) return String(current);
  const jitterSeconds = 1 + Math.floor(Math.random() * 3600);
  return String(client + Math.max(1, Math.ceil((jitterSeconds * 1000) / CURSOR_INTERVAL_MS)));
}

/** SSE `data:` lines for a payload: every line terminator starts a new `data:` line. */
export function sseData(payload: string): string {
  return `data:${payload.split(/\r\n|\r|\n/).join("\ndata:")}\n\n`;
}
