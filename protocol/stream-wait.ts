/**
 * The Durable Streams waiter frame: how a topic object hands the gateway the read a waiting
 * reader gets when data arrives (one WebSocket text message on the waiter socket the gateway
 * opened with `topicUpgradeRequest({ kind: "stream-wait" })`, then a close). It saves the gateway
 * a second call. Byte bodies travel as base64. The gateway decodes it here and nowhere else.
 *
 * @example
 * const text = encodeWaiterReply(reply); // in the topic
 * decodeWaiterReply(text);              // in the gateway: the reply, or null when malformed
 */
import { base64ToBytes, bytesToBase64 } from "./base64.ts";

/** A Durable Streams read as the topic composed it: the HTTP answer and where it ends. */
export interface StreamReadReply {
  status: number;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** Dovetail offset the reply ends at (where a waiting reader waits). */
  next: number;
  /** No data returned and the reader is at the tail of an open stream. */
  wait: boolean;
  /** The stream's content type ("" when it does not exist). */
  contentType: string;
}

export function encodeWaiterReply(reply: StreamReadReply): string {
  const { body, ...rest } = reply;
  return JSON.stringify(body instanceof Uint8Array ? { ...rest, b64: bytesToBase64(body) } : { ...rest, text: body });
}

/** The reply {@link encodeWaiterReply} encoded, checked field by field; null for anything else. */
export function decodeWaiterReply(raw: unknown): StreamReadReply | null {
  if (typeof raw !== "string") return null;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.status !== "number" || typeof v.next !== "number" || typeof v.wait !== "boolean" || typeof v.contentType !== "string") return null;
  if (typeof v.headers !== "object" || v.headers === null || Object.values(v.headers).some((h) => typeof h !== "string")) return null;
  const reply: StreamReadReply = { status: v.status, headers: v.headers as Record<string, string>, next: v.next, wait: v.wait, contentType: v.contentType };
  if (typeof v.b64 === "string") reply.body = base64ToBytes(v.b64);
  else if (typeof v.text === "string") reply.body = v.text;
  return reply;
}
