/**
 * Client → server frames as the server receives them: the zod schemas that check every field a
 * client sends, and the one place such frames are decoded (`parseClientFrame` for the topic's
 * sockets, `parsePublishMessages` for HTTP bodies too). The server's half of frames.ts, kept
 * apart so that clients, which only encode these frames, never load zod (decision 025);
 * frames.ts re-exports the frame types.
 */
import { z } from "zod";
import {
  CLIENT_FRAME,
  MAX_CREDIT,
  MAX_DATA_DEPTH,
  MAX_HEADERS,
  MAX_HEADER_NAME_LENGTH,
  MAX_HEADER_VALUE_LENGTH,
  MAX_KEY_LENGTH,
  MAX_PRIORITY,
  MAX_PRODUCER_ID_LENGTH,
  MAX_TTL_MS,
  nestsDeeperThan,
  parseFailure,
  tooDeepError,
  type ParseResult,
} from "./frames.ts";
import { consumeFrameSchema, settleFrameSchema, type ConsumeFrame, type SettleFrame } from "./group-schemas.ts";
import { replyFrameSchema, requestFrameSchema, serveFrameSchema, type ReplyFrame, type RequestFrame, type ServeFrame } from "./request-schemas.ts";
import { subscribeFromSchema } from "./subscribe-from.ts";

// ---------------------------------------------------------------------------------------------
// Shared shapes

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
    /** Consumer groups hand out higher priorities first (0–9, default 0); see docs/groups.md. */
    priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
    /** Consumer groups do not deliver the message after this time (ms since the epoch). */
    expiresAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    /** As `expiresAt`, relative to when the topic stores the message. */
    ttlMs: z.number().int().min(1).max(MAX_TTL_MS).optional(),
  })
  .refine((m) => "data" in m !== "bytes" in m, { message: "a message has exactly one of data or bytes" })
  .refine((m) => m.expiresAt === undefined || m.ttlMs === undefined, { message: "a message has at most one of expiresAt or ttlMs" });
export type PublishMessage = z.infer<typeof publishMessageSchema>;

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
export type ClientFrame = PublishFrame | SubscribeFrame | CreditFrame | UnsubscribeFrame | ConsumeFrame | SettleFrame | ServeFrame | RequestFrame | ReplyFrame;

const CLIENT_SCHEMAS = {
  publish: publishFrameSchema,
  subscribe: subscribeFrameSchema,
  credit: creditFrameSchema,
  unsubscribe: unsubscribeFrameSchema,
  consume: consumeFrameSchema,
  settle: settleFrameSchema,
  serve: serveFrameSchema,
  request: requestFrameSchema,
  reply: replyFrameSchema,
} as const;

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * The first steps of every parser of client frames (topic, pattern and presence sockets): JSON
 * text holding an object with a string `type`. The runtime hands us text frames already decoded,
 * with invalid UTF-8 replaced by U+FFFD, so a raw U+FFFD is refused: it may be a corrupted byte. A
 * client that means U+FFFD escapes it as \ufffd in its JSON, as the SDK does (issue 18;
 * docs/protocol.md, "Text frames").
 */
export function readClientFrame(raw: string | ArrayBuffer): ParseResult<Record<string, unknown> & { type: string }> {
  if (typeof raw !== "string") return parseFailure("bad_frame", "binary frames are not part of protocol v1; send JSON text");
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return parseFailure("bad_frame", "frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return parseFailure("bad_frame", "frame must be a JSON object");
  const obj = value as Record<string, unknown>;
  if (raw.includes("\uFFFD")) return parseFailure("invalid_utf8", "frame holds invalid UTF-8 (or a raw U+FFFD: escape it as \\ufffd)", obj.id);
  if (typeof obj.type !== "string") return parseFailure("bad_frame", "frame has no string `type`", obj.id);
  return { ok: true, frame: obj as Record<string, unknown> & { type: string } };
}

/** The first issue zod found, as `path: message`. */
export function issueText(error: z.ZodError, prefix = ""): string {
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
  const read = readClientFrame(raw);
  if (!read.ok) return read;
  const obj = read.frame;
  const type = obj.type;
  if (!Object.hasOwn(CLIENT_SCHEMAS, type)) return parseFailure("unknown_type", `unknown frame type ${JSON.stringify(type).slice(0, 64)}`, obj.id);
  const parsed = CLIENT_SCHEMAS[type as keyof typeof CLIENT_SCHEMAS].safeParse(obj);
  if (!parsed.success) return parseFailure("invalid_field", issueText(parsed.error), obj.id);
  if (parsed.data.type !== "publish") return { ok: true, frame: parsed.data };
  const messages = parsePublishMessages(parsed.data.messages);
  if (!messages.ok) return parseFailure(messages.error.code, messages.error.message, obj.id);
  return { ok: true, frame: { ...parsed.data, messages: messages.frame } };
}

/** Validate the messages of a publish (WebSocket frame or HTTP body). */
export function parsePublishMessages(raw: unknown[]): ParseResult<PublishMessage[]> {
  const out: PublishMessage[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const parsed = publishMessageSchema.safeParse(raw[i]);
    if (!parsed.success) return parseFailure("invalid_field", issueText(parsed.error, `messages.${i}`));
    if (nestsDeeperThan(parsed.data.data, MAX_DATA_DEPTH)) return { ok: false, error: tooDeepError(i) };
    out[i] = parsed.data;
  }
  return { ok: true, frame: out };
}
