/** Messages as the application sees them, and their encoding to and from the wire. */
import { base64ToBytes, bytesToBase64 } from "./base64.ts";
import { DovetailError } from "./errors.ts";
import { MAX_HEADERS, MAX_KEY_LENGTH, type DeliveredMessage } from "./protocol.ts";

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

/** Per-message options for `publish` and `send`. */
export interface PublishOptions {
  key?: string;
  headers?: Record<string, string>;
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

/**
 * Encode one message. `Uint8Array` / `ArrayBuffer` payloads travel as `bytes` (base64); any other
 * value as JSON `data`. Throws `invalid_field` for what the topic would refuse anyway.
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
    const text = JSON.stringify(data);
    body = `"data":${text}`;
    size = utf8Length(text);
  }
  if (options?.key !== undefined) {
    if (typeof options.key !== "string" || options.key.length > MAX_KEY_LENGTH) {
      throw new DovetailError("invalid_field", `key: at most ${MAX_KEY_LENGTH} characters`);
    }
    body += `,"key":${JSON.stringify(options.key)}`;
  }
  if (options?.headers !== undefined) {
    if (Object.keys(options.headers).length > MAX_HEADERS) throw new DovetailError("invalid_field", `headers: at most ${MAX_HEADERS}`);
    body += `,"headers":${JSON.stringify(options.headers)}`;
  }
  return { json: `{${body}}`, size };
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
