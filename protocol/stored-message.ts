/**
 * How a topic stores one message: its body is the JSON members `"key":…,"headers":…,` (when
 * present) followed by `"data":<JSON text>` or `"bytes":"<base64>"`. A delivered message is the
 * body inside `{"offset":N,"time":T,…}`. Every path that writes (WebSocket and HTTP publishes,
 * Durable Streams appends) encodes with {@link storedBody}, and every path that reads
 * (deliveries, HTTP reads, Durable Streams reads) decodes with the functions here, so a message
 * written one way reads the same every other way.
 *
 * @example
 * storedBody({ data: '{"a":1}' }, { key: "k" }) // '"key":"k","data":{"a":1}'
 * deliveredMessageJson(7, 1700000000000, body)  // '{"offset":7,"time":1700000000000,"key":"k","data":{"a":1}}'
 */
import { base64ToBytes } from "./base64.ts";

/** A payload as it is stored: JSON text of `data`, or standard base64 of `bytes`. */
export type StoredPayload = { data: string } | { bytes: string };

/** What a stored body may say about its message besides the payload, in this order. */
export interface StoredMeta {
  key?: string | undefined;
  /** Priority lane for consumer groups, 1–9 (0, the default, is not stored). */
  priority?: number | undefined;
  /** When the message expires for consumer groups (ms since the epoch). */
  expiresAt?: number | undefined;
  headers?: Record<string, string> | undefined;
}

/** The stored body of one message. `data` must be JSON text, `bytes` standard base64 (checked by the caller). */
export function storedBody(payload: StoredPayload, meta: StoredMeta = {}): string {
  let body = "";
  if (meta.key !== undefined) body += `"key":${JSON.stringify(meta.key)},`;
  if (meta.priority !== undefined && meta.priority !== 0) body += `"priority":${meta.priority},`;
  if (meta.expiresAt !== undefined) body += `"expiresAt":${meta.expiresAt},`;
  if (meta.headers !== undefined) body += `"headers":${JSON.stringify(meta.headers)},`;
  return "data" in payload ? `${body}"data":${payload.data}` : `${body}"bytes":"${payload.bytes}"`;
}

/** What consumer groups need of a stored message, read from its body without parsing the payload. */
export interface DispatchMeta {
  key: string | undefined;
  priority: number;
  expiresAt: number | undefined;
}

const KEY_PREFIX = '"key":"';
const PRIORITY_PREFIX = '"priority":';
const EXPIRES_PREFIX = '"expiresAt":';

/**
 * Key, priority and expiry of a stored body. They come first in a body ({@link storedBody}), so
 * this reads only the front of it: a body never has to be parsed whole to be dispatched.
 *
 * @example
 * dispatchMeta('"key":"k","priority":7,"data":1') // { key: "k", priority: 7, expiresAt: undefined }
 */
export function dispatchMeta(body: string): DispatchMeta {
  let at = 0;
  let key: string | undefined;
  let priority = 0;
  let expiresAt: number | undefined;
  if (body.startsWith(KEY_PREFIX)) {
    let end = KEY_PREFIX.length;
    // The key is a JSON string: find its closing quote, stepping over escapes.
    while (end < body.length && body.charCodeAt(end) !== 34) end += body.charCodeAt(end) === 92 ? 2 : 1;
    key = JSON.parse(body.slice(KEY_PREFIX.length - 1, end + 1)) as string;
    at = end + 2; // past `",`
  }
  if (body.startsWith(PRIORITY_PREFIX, at)) {
    const end = body.indexOf(",", at);
    priority = Number(body.slice(at + PRIORITY_PREFIX.length, end));
    at = end + 1;
  }
  if (body.startsWith(EXPIRES_PREFIX, at)) {
    const end = body.indexOf(",", at);
    expiresAt = Number(body.slice(at + EXPIRES_PREFIX.length, end));
  }
  return { key, priority, expiresAt };
}

/** The JSON of one delivered message (as in `messages` frames and HTTP reads). */
export function deliveredMessageJson(offset: number, time: number, body: string): string {
  return `{"offset":${offset},"time":${time},${body}}`;
}

/**
 * The JSON text of a stored body's payload: a `data` message yields its value; a `bytes`
 * message yields its base64 text as a JSON string.
 */
export function bodyAsJson(body: string): string {
  if (body.startsWith('"data":')) return body.slice(7);
  const parsed = JSON.parse(`{${body}}`) as { data?: unknown; bytes?: string };
  return "bytes" in parsed ? JSON.stringify(parsed.bytes) : JSON.stringify(parsed.data ?? null);
}

const utf8 = new TextEncoder();

/** The raw bytes of a stored body's payload: decoded `bytes`, or the UTF-8 of the `data` JSON text. */
export function bodyAsBytes(body: string): Uint8Array {
  if (body.startsWith('"bytes":"')) return base64ToBytes(body.slice(9, -1));
  if (body.startsWith('"data":')) return utf8.encode(body.slice(7));
  const parsed = JSON.parse(`{${body}}`) as { data?: unknown; bytes?: string };
  return parsed.bytes !== undefined ? base64ToBytes(parsed.bytes) : utf8.encode(JSON.stringify(parsed.data ?? null));
}
