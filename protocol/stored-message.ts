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

/** The stored body of one message. `data` must be JSON text, `bytes` standard base64 (checked by the caller). */
export function storedBody(payload: StoredPayload, meta: { key?: string | undefined; headers?: Record<string, string> | undefined } = {}): string {
  let body = "";
  if (meta.key !== undefined) body += `"key":${JSON.stringify(meta.key)},`;
  if (meta.headers !== undefined) body += `"headers":${JSON.stringify(meta.headers)},`;
  return "data" in payload ? `${body}"data":${payload.data}` : `${body}"bytes":"${payload.bytes}"`;
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
