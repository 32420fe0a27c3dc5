/**
 * The Dovetail wire protocol, version 1: the one definition both the topic object and the
 * clients import. docs/protocol.md describes the same frames for people writing other clients.
 *
 * Transport: one WebSocket per topic (`GET /v1/topics/{topic}/ws`), JSON text frames, each an
 * object with a `type`. Compatibility rule for every frame: receivers ignore fields they do not
 * know, so fields may be added in a minor revision; a field's meaning never changes within v1.
 */
import { z } from "zod";
import { DovetailError, type ErrorCode, type ErrorDetails } from "./errors.ts";

export const PROTOCOL_VERSION = 1;

/** Client → server frame types. */
export const CLIENT_FRAME = {
  publish: "publish",
  subscribe: "subscribe",
  credit: "credit",
  unsubscribe: "unsubscribe",
} as const;

/** Server → client frame types. */
export const SERVER_FRAME = {
  welcome: "welcome",
  ack: "ack",
  subscribed: "subscribed",
  messages: "messages",
  unsubscribed: "unsubscribed",
  error: "error",
} as const;

/**
 * Keep-alive: a client may send exactly this text at any time and gets {@link PONG_TEXT} back.
 * The runtime answers it without waking a hibernated topic.
 */
export const PING_TEXT = '{"type":"ping"}';
export const PONG_TEXT = '{"type":"pong"}';

/** Default credit a `subscribe` frame grants when it names none. */
export const DEFAULT_CREDIT = 1000;
/** Largest credit a single frame may grant (the total is capped at the same number). */
export const MAX_CREDIT = 1_000_000;
export const MAX_KEY_LENGTH = 256;
export const MAX_HEADERS = 64;
export const MAX_HEADER_NAME_LENGTH = 128;
export const MAX_HEADER_VALUE_LENGTH = 4096;
export const MAX_PRODUCER_ID_LENGTH = 128;
/**
 * Deepest nesting of arrays and objects in a message's `data` (`{"a":[1]}` is 2 levels). Deeper
 * values are refused with `too_deep` on every path (WebSocket, HTTP, Durable Streams JSON appends,
 * and by the SDK before sending), checked without recursion, so no depth can overflow a stack.
 */
export const MAX_DATA_DEPTH = 128;

/**
 * Does `value` nest arrays and objects more than `max` levels deep? Walks with its own stack
 * (no recursion) and stops at the first path deeper than `max`.
 *
 * @example
 * nestsDeeperThan({ a: [1] }, 1) // true
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const values: object[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const v = values.pop()!;
    const depth = depths.pop()!;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** The `too_deep` refusal for message `index`. */
export function tooDeepError(index: number): DovetailError {
  return new DovetailError("too_deep", `messages.${index}.data nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
}

// ---------------------------------------------------------------------------------------------
// Shared shapes

/** A non-negative integer that survives JSON and JavaScript numbers exactly. */
const offsetSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const correlationIdSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const headersSchema = z
  .record(z.string().min(1).max(MAX_HEADER_NAME_LENGTH), z.string().max(MAX_HEADER_VALUE_LENGTH))
  .refine((h) => Object.keys(h).length <= MAX_HEADERS, { message: `at most ${MAX_HEADERS} headers` });

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * One message as a publisher sends it. Exactly one of `data` (any JSON value, stored as JSON text)
 * or `bytes` (base64, stored as bytes) is present.
 */
export const publishMessageSchema = z
  .object({
    // Any JSON value. Not z.json(): it validates by recursion, and a value nested a few thousand
    // levels deep overflowed the stack (issue 18). Depth is checked by nestsDeeperThan().
    data: z.unknown().optional(),
    bytes: z.string().regex(BASE64, "bytes must be standard base64").optional(),
    key: z.string().max(MAX_KEY_LENGTH).optional(),
    headers: headersSchema.optional(),
  })
  .refine((m) => "data" in m !== "bytes" in m, { message: "a message has exactly one of data or bytes" });
export type PublishMessage = z.infer<typeof publishMessageSchema>;

/**
 * Where a subscription starts: an offset, the first retained message, the next message to be
 * written, or the first message stored at or after a time (milliseconds since the epoch).
 */
export const subscribeFromSchema = z.union([offsetSchema, z.literal("earliest"), z.literal("latest"), z.object({ time: z.number().int().min(0) })]);
export type SubscribeFrom = z.infer<typeof subscribeFromSchema>;

/** Identifies an idempotent producer's frame: the topic stores each (id, seq) once. */
export const producerSchema = z.object({
  id: z.string().min(1).max(MAX_PRODUCER_ID_LENGTH),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type ProducerStamp = z.infer<typeof producerSchema>;

// ---------------------------------------------------------------------------------------------
// Client → server frames

/**
 * `publish` (client → server): append one or more messages. The server answers with one `ack`
 * once all of them are durable, or one `error`; either way carrying the same `id`. Messages of one
 * frame get consecutive offsets. With `producer`, a frame resent after a reconnect is stored once.
 */
export const publishFrameSchema = z.object({
  type: z.literal(CLIENT_FRAME.publish),
  id: correlationIdSchema,
  messages: z.array(z.unknown()).min(1),
  producer: producerSchema.optional(),
});

/**
 * `subscribe` (client → server): start delivery from `from`, within `credit` messages. One
 * subscription per socket. Answered by `subscribed` (naming the first offset that will be
 * delivered) or `error` (`offset_trimmed`, `offset_out_of_range`, `already_subscribed`).
 */
export const subscribeFrameSchema = z.object({
  type: z.literal(CLIENT_FRAME.subscribe),
  id: correlationIdSchema,
  from: subscribeFromSchema,
  credit: z.number().int().min(0).max(MAX_CREDIT).optional(),
});

/**
 * `credit` (client → server): allow `messages` more deliveries. Exists because the runtime gives
 * the server no send-side backpressure: a subscriber paces the topic by granting credit as it
 * consumes. Credit above {@link MAX_CREDIT} in total is capped.
 */
export const creditFrameSchema = z.object({
  type: z.literal(CLIENT_FRAME.credit),
  messages: z.number().int().min(1).max(MAX_CREDIT),
});

/** `unsubscribe` (client → server): stop delivery; answered by `unsubscribed`. */
export const unsubscribeFrameSchema = z.object({
  type: z.literal(CLIENT_FRAME.unsubscribe),
  id: correlationIdSchema,
});

export type PublishFrame = Omit<z.infer<typeof publishFrameSchema>, "messages"> & { messages: PublishMessage[] };
export type SubscribeFrame = z.infer<typeof subscribeFrameSchema>;
export type CreditFrame = z.infer<typeof creditFrameSchema>;
export type UnsubscribeFrame = z.infer<typeof unsubscribeFrameSchema>;
export type ClientFrame = PublishFrame | SubscribeFrame | CreditFrame | UnsubscribeFrame;

const CLIENT_SCHEMAS = {
  publish: publishFrameSchema,
  subscribe: subscribeFrameSchema,
  credit: creditFrameSchema,
  unsubscribe: unsubscribeFrameSchema,
} as const;

// ---------------------------------------------------------------------------------------------
// Server → client frames

/** Limits the server enforces, announced in `welcome` so clients can check before sending. */
export interface TopicLimits {
  maxMessageBytes: number;
  maxBatchMessages: number;
  maxBatchBytes: number;
}

/**
 * `welcome` (server → client): first frame on every socket. `head` is the offset the next
 * message will get; `earliest` the first offset still stored.
 */
export interface WelcomeFrame {
  type: "welcome";
  version: number;
  topic: string;
  head: number;
  earliest: number;
  limits: TopicLimits;
}

/** `ack` (server → client): the `publish` with this `id` is durable at `offset .. offset+count-1`. */
export interface AckFrame {
  type: "ack";
  id: number;
  offset: number;
  count: number;
  /** Present and true when this frame was a resend that the topic had already stored. */
  duplicate?: boolean;
}

/** `subscribed` (server → client): delivery starts at `next`. */
export interface SubscribedFrame {
  type: "subscribed";
  id: number;
  next: number;
}

/** One stored message as it is delivered. Exactly one of `data` and `bytes` is present. */
export interface DeliveredMessage {
  offset: number;
  /** When the topic stored it, milliseconds since the epoch. */
  time: number;
  key?: string;
  headers?: Record<string, string>;
  data?: unknown;
  /** base64 */
  bytes?: string;
}

/**
 * `messages` (server → client): consecutive messages in offset order, never more than the
 * credit granted. The first offset of each frame follows the last of the previous one.
 */
export interface MessagesFrame {
  type: "messages";
  messages: DeliveredMessage[];
}

/** `unsubscribed` (server → client): the subscription with this `id` has stopped. */
export interface UnsubscribedFrame {
  type: "unsubscribed";
  id: number;
}

/** `error` (server → client): `id` names the frame it answers, when it answers one. */
export type ErrorFrame = { type: "error"; id?: number; code: ErrorCode; message: string } & ErrorDetails;

export type ServerFrame = WelcomeFrame | AckFrame | SubscribedFrame | MessagesFrame | UnsubscribedFrame | ErrorFrame;

// ---------------------------------------------------------------------------------------------
// Parsing

export type ParseResult<T> = { ok: true; frame: T } | { ok: false; error: DovetailError; id?: number };

function fail<T>(code: ErrorCode, message: string, id?: unknown): ParseResult<T> {
  const result: ParseResult<T> = { ok: false, error: new DovetailError(code, message) };
  if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) result.id = id;
  return result;
}

function issueText(error: z.ZodError, prefix = ""): string {
  const issue = error.issues[0];
  if (!issue) return "invalid frame";
  const path = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
  return path ? `${path}: ${issue.message}` : issue.message;
}

/**
 * Parse one client frame. The only place a client frame is decoded: returns the typed frame or
 * a typed error (with the frame's `id` when one could be read, so the error can answer it).
 * Message payload sizes are checked by the topic, which knows its configured limits.
 */
export function parseClientFrame(raw: string | ArrayBuffer): ParseResult<ClientFrame> {
  if (typeof raw !== "string") return fail("bad_frame", "binary frames are not part of protocol v1; send JSON text");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail("bad_frame", "frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail("bad_frame", "frame must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  // The runtime hands us text frames already decoded, with invalid UTF-8 replaced by U+FFFD, so
  // a raw U+FFFD is refused: it may be a corrupted byte. A client that means U+FFFD escapes it
  // as \ufffd in its JSON, as the SDK does (issue 18; docs/protocol.md, "Text frames").
  if (raw.includes("\uFFFD")) return fail("invalid_utf8", "frame holds invalid UTF-8 (or a raw U+FFFD: escape it as \\ufffd)", obj.id);
  const type = obj.type;
  if (typeof type !== "string") return fail("bad_frame", "frame has no string `type`", obj.id);
  if (!Object.hasOwn(CLIENT_SCHEMAS, type)) return fail("unknown_type", `unknown frame type ${JSON.stringify(type).slice(0, 64)}`, obj.id);
  const parsed = CLIENT_SCHEMAS[type as keyof typeof CLIENT_SCHEMAS].safeParse(obj);
  if (!parsed.success) return fail("invalid_field", issueText(parsed.error), obj.id);
  if (parsed.data.type !== "publish") return { ok: true, frame: parsed.data };
  const messages = parsePublishMessages(parsed.data.messages);
  if (!messages.ok) return fail(messages.error.code, messages.error.message, obj.id);
  return { ok: true, frame: { ...parsed.data, messages: messages.frame } };
}

/** Validate the messages of a publish (WebSocket frame or HTTP body). */
export function parsePublishMessages(raw: unknown[]): ParseResult<PublishMessage[]> {
  const out: PublishMessage[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const parsed = publishMessageSchema.safeParse(raw[i]);
    if (!parsed.success) return fail("invalid_field", issueText(parsed.error, `messages.${i}`));
    if (nestsDeeperThan(parsed.data.data, MAX_DATA_DEPTH)) return { ok: false, error: tooDeepError(i) };
    out[i] = parsed.data;
  }
  return { ok: true, frame: out };
}

/** A server frame of a type this client does not know (from a newer server): clients ignore it. */
export interface UnknownServerFrame {
  type: "unknown";
  /** The frame's own `type`. */
  name: string;
}

/**
 * Parse one server frame (client side). Servers are trusted more than clients, so this checks
 * only what a client relies on: a known `type` and the fields it reads. A frame of a type this
 * version does not know is `{ type: "unknown" }`, to be ignored (versioning rule, docs/protocol.md);
 * a known type with the wrong fields is `bad_frame`.
 */
export function parseServerFrame(raw: string | ArrayBuffer): ParseResult<ServerFrame | { type: "pong" } | UnknownServerFrame> {
  if (typeof raw !== "string") return fail("bad_frame", "binary frame from server");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail("bad_frame", "server frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null) return fail("bad_frame", "server frame is not an object");
  const f = value as Record<string, unknown>;
  switch (f.type) {
    case "messages":
      if (!Array.isArray(f.messages)) break;
      return { ok: true, frame: f as unknown as MessagesFrame };
    case "ack":
      if (typeof f.id !== "number" || typeof f.offset !== "number" || typeof f.count !== "number") break;
      return { ok: true, frame: f as unknown as AckFrame };
    case "subscribed":
      if (typeof f.id !== "number" || typeof f.next !== "number") break;
      return { ok: true, frame: f as unknown as SubscribedFrame };
    case "welcome":
      if (typeof f.version !== "number" || typeof f.head !== "number") break;
      return { ok: true, frame: f as unknown as WelcomeFrame };
    case "unsubscribed":
      if (typeof f.id !== "number") break;
      return { ok: true, frame: f as unknown as UnsubscribedFrame };
    case "error":
      if (typeof f.code !== "string" || typeof f.message !== "string") break;
      return { ok: true, frame: f as unknown as ErrorFrame };
    case "pong":
      return { ok: true, frame: { type: "pong" } };
    default:
      if (typeof f.type === "string") return { ok: true, frame: { type: "unknown", name: f.type } };
  }
  return fail("bad_frame", `unexpected server frame ${JSON.stringify(f.type)}`);
}

// ---------------------------------------------------------------------------------------------
// Encoding (server side helpers, kept here so the shape is defined once)

/**
 * Encode a `messages` frame from messages that are already JSON text. The topic stores each
 * message's JSON once and fans the same text out to every subscriber.
 */
export function encodeMessagesFrame(messageJson: readonly string[]): string {
  return `{"type":"messages","messages":[${messageJson.join(",")}]}`;
}

/** Encode an `error` frame. */
export function encodeErrorFrame(error: DovetailError, id?: number): string {
  const frame: Record<string, unknown> = { type: "error" };
  if (id !== undefined) frame.id = id;
  frame.code = error.code;
  frame.message = error.message;
  Object.assign(frame, error.details);
  return JSON.stringify(frame);
}

/** Encode any other server frame. */
export function encodeServerFrame(frame: Exclude<ServerFrame, MessagesFrame | ErrorFrame>): string {
  return JSON.stringify(frame);
}

/** Encode a client frame. */
export function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}
