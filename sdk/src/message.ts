/** Messages as the application sees them, and their encoding to and from the wire. */
import { base64ToBytes, bytesToBase64 } from "../../protocol/base64.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { MAX_DATA_DEPTH, MAX_HEADERS, MAX_KEY_LENGTH, MAX_PRIORITY, MAX_TTL_MS, nestsDeeperThan, type DeliveredMessage } from "../../protocol/frames.ts";
import type { WaitOptions } from "./wait.ts";

export { base64ToBytes, bytesToBase64 };

/** One message delivered by `bus.subscribe()`. */
export interface Message<T = unknown> {
  /** Position in the topic, from 0, consecutive. */
  offset: number;
  /** The payload: the JSON value published, or a Uint8Array for binary payloads. */
  data: T;
  /** Headers published with the message (empty object when none). */
  headers: Record<string, string>;
  /** When the topic stored it, milliseconds since the epoch. */
  time: number;
  /** The key published with the message, if any. */
  key?: string;
}

/**
 * Per-message options for `publish` and `send`: the message's key and headers, and how long to
 * wait for its confirm (`timeoutMs`, default 30 s; `signal`).
 */
export interface PublishOptions extends WaitOptions {
  key?: string;
  headers?: Record<string, string>;
  /** Consumer groups hand out higher priorities first: 0 (default) to 9 (docs/groups.md). */
  priority?: number;
  /** Consumer groups do not deliver the message after this long (ms after it is stored). */
  ttlMs?: number;
  /** Consumer groups do not deliver the message after this time (a Date or ms since the epoch). */
  expiresAt?: Date | number;
}

/** Adds a `traceparent` to a message's headers (trace.ts `tracedHeaders`), once the tracing chunk has loaded. */
export type TraceHeaders = (headers: Record<string, string> | undefined, max: number) => Record<string, string> | undefined;
let traceHeaders: TraceHeaders | undefined;

/**
 * Set by the bus once the tracing chunk (trace.ts) has loaded: every message encoded from then on
 * gets a `traceparent`. The core carries only this hook (the browser bundle budget).
 */
export function setTraceHeaders(fn: TraceHeaders | undefined): void {
  traceHeaders = fn;
}

/** A message encoded for a `publish` frame: its JSON text and the payload size the topic counts. */
export interface EncodedMessage {
  json: string;
  /** Payload bytes as the topic measures them (UTF-8 JSON text, or decoded bytes). */
  size: number;
}

const encoder = new TextEncoder();

function utf8Length(text: string): number {
  // Pure ASCII is the common case; count exactly only when it could matter.
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return encoder.encode(text).length;
  return text.length;
}

/** Fewest characters of JSON text that can nest deeper than MAX_DATA_DEPTH (`[[…]]`): shorter text needs no scan. */
const SHORTEST_TOO_DEEP = 2 * (MAX_DATA_DEPTH + 1);

/**
 * Does this JSON text (as JSON.stringify writes it) nest arrays and objects more than `max`
 * levels deep? The depth the topic measures on the parsed value (protocol.ts nestsDeeperThan),
 * read from the text rather than from the application's value: `toJSON` (Dates, or objects that
 * break a cycle of parent links) can make the two differ.
 */
export function jsonNestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote; `\` escapes the next character.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** JSON text of `data`, or the DovetailError the send fails with (never another kind of error). */
function dataJson(data: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch (error) {
    // A RangeError from nesting deep enough to exhaust the stack; a TypeError for a cycle or a
    // BigInt inside; whatever a toJSON threw.
    if (error instanceof RangeError && nestsDeeperThan(data, MAX_DATA_DEPTH)) throw tooDeep();
    throw new DovetailError("invalid_field", `data cannot be sent as JSON: ${error instanceof Error ? error.message : String(error)}`, {}, { cause: error });
  }
  if (typeof text !== "string")
    throw new DovetailError("invalid_field", "data cannot be sent as JSON: it serializes to nothing (a toJSON returning undefined?)");
  if (text.length >= SHORTEST_TOO_DEEP && jsonNestsDeeperThan(text, MAX_DATA_DEPTH)) throw tooDeep();
  return text;
}

function tooDeep(): DovetailError {
  return new DovetailError("too_deep", `data nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
}

/**
 * Encode one message. `Uint8Array` / `ArrayBuffer` payloads travel as `bytes` (base64); any other
 * value as JSON `data`. Throws a DovetailError for what the topic would refuse anyway:
 * `invalid_field` (not JSON: undefined, a function, a cycle, a BigInt; a key too long; too many
 * headers) or `too_deep` (data nested more than MAX_DATA_DEPTH levels), so that only this
 * message's send fails, not the others batched with it.
 */
export function encodeMessage(data: unknown, options: PublishOptions | undefined): EncodedMessage {
  let body: string;
  let size: number;
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    body = `"bytes":"${bytesToBase64(bytes)}"`;
    size = bytes.length;
  } else {
    if (data === undefined || typeof data === "function" || typeof data === "symbol" || typeof data === "bigint") {
      throw new DovetailError("invalid_field", `data: ${typeof data} cannot be sent as JSON`);
    }
    const text = dataJson(data);
    body = `"data":${text}`;
    size = utf8Length(text);
  }
  if (options?.key !== undefined) {
    if (typeof options.key !== "string" || options.key.length > MAX_KEY_LENGTH) {
      throw new DovetailError("invalid_field", `key: at most ${MAX_KEY_LENGTH} characters`);
    }
    body += `,"key":${JSON.stringify(options.key)}`;
  }
  const headers = traceHeaders?.(options?.headers, MAX_HEADERS) ?? options?.headers;
  if (headers !== undefined) {
    if (Object.keys(headers).length > MAX_HEADERS) throw new DovetailError("invalid_field", `headers: at most ${MAX_HEADERS}`);
    body += `,"headers":${JSON.stringify(headers)}`;
  }
  if (options?.priority !== undefined) {
    if (!Number.isInteger(options.priority) || options.priority < 0 || options.priority > MAX_PRIORITY) {
      throw new DovetailError("invalid_field", `priority: an integer from 0 to ${MAX_PRIORITY}`);
    }
    body += `,"priority":${options.priority}`;
  }
  if (options?.ttlMs !== undefined) {
    if (!Number.isInteger(options.ttlMs) || options.ttlMs < 1 || options.ttlMs > MAX_TTL_MS)
      throw new DovetailError("invalid_field", `ttlMs: an integer from 1 to ${MAX_TTL_MS}`);
    body += `,"ttlMs":${options.ttlMs}`;
  }
  if (options?.expiresAt !== undefined) {
    const at = options.expiresAt instanceof Date ? options.expiresAt.getTime() : options.expiresAt;
    if (!Number.isSafeInteger(at) || at < 0) throw new DovetailError("invalid_field", "expiresAt: a Date or milliseconds since the epoch");
    body += `,"expiresAt":${at}`;
  }
  // The server refuses a raw U+FFFD in a text frame (it cannot tell it from invalid UTF-8 that
  // the runtime replaced; docs/protocol.md): JSON's escape carries the same character.
  const json = `{${body}}`;
  return { json: json.includes("\uFFFD") ? json.replaceAll("\uFFFD", "\\ufffd") : json, size };
}

/** A delivered wire message as the application sees it. */
export function decodeMessage(m: DeliveredMessage): Message {
  const out: Message = {
    offset: m.offset,
    data: m.bytes !== undefined ? base64ToBytes(m.bytes) : m.data,
    headers: m.headers ?? {},
    time: m.time,
  };
  if (m.key !== undefined) out.key = m.key;
  return out;
}
