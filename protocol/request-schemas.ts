/**
 * The zod schemas of request/reply as the server checks them: the `serve`, `request` and
 * `reply` client frames (through frame-schemas.ts) and the body of
 * `POST /v1/topics/{topic}/request`. Kept apart from requests.ts, which clients import, so that
 * clients never load zod (decision 025).
 */
import { z } from "zod";
import { GROUP_NAME } from "./groups.ts";
import { TRACEPARENT } from "./trace-context.ts";
import { MAX_BATCH_REQUESTS, MAX_REMOTE_CODE_LENGTH, MAX_REMOTE_MESSAGE_LENGTH, MAX_REQUEST_TIMEOUT_MS, REQUEST_ID } from "./requests.ts";

const correlationIdSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const timeoutSchema = z.number().int().min(1).max(MAX_REQUEST_TIMEOUT_MS);
/** W3C `traceparent` of the requester's trace: handed to the responder (protocol/trace-context.ts). */
const traceparentSchema = z.string().regex(TRACEPARENT, "a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>");

/**
 * `serve` (client → server): this socket answers requests on its topic, as a member of `group`
 * (default `default`). With `durable`, it also answers durable requests, which its group hands
 * out: the socket must `consume` that group too (docs/requests.md). Answered by `serving`.
 */
export const serveFrameSchema = z.object({
  type: z.literal("serve"),
  id: correlationIdSchema,
  group: z.string().regex(GROUP_NAME, "a group name is 1–64 characters of A-Z a-z 0-9 _ -").optional(),
  durable: z.boolean().optional(),
});

/** One request: any JSON `data` within the topic's message size, how long to wait, and whether to store it. */
const requestItemSchema = z.object({
  id: correlationIdSchema,
  data: z.unknown(),
  timeoutMs: timeoutSchema.optional(),
  durable: z.boolean().optional(),
  traceparent: traceparentSchema.optional(),
});

/**
 * `request` (client → server): ask the topic's responders. Answered by exactly one `reply` or
 * `error` with the same `id` (`no_responders`, `timeout`, `responder_gone`, `remote_error`, ...).
 * `data` is any JSON value within the topic's message size. With `durable`, the request is stored
 * in the topic and handed out by the responders' group.
 *
 * Batch form: `requests` instead of `id`/`data`/`timeoutMs`/`durable`, a list of such requests
 * sent together (a client sends the requests of one tick in one frame: each frame is a runtime
 * event of the topic, decision 029). Each is answered by exactly one item of a `replies` frame
 * with its `id`; one the topic refuses is answered there as an error item.
 */
export const requestFrameSchema = z
  .object({
    type: z.literal("request"),
    id: correlationIdSchema.optional(),
    data: z.unknown().optional(),
    timeoutMs: timeoutSchema.optional(),
    durable: z.boolean().optional(),
    traceparent: traceparentSchema.optional(),
    requests: z.array(requestItemSchema).min(1).max(MAX_BATCH_REQUESTS).optional(),
  })
  .refine((f) => (f.id === undefined) !== (f.requests === undefined), { message: "a request has an id, or requests (a batch), not both" });

/** An error a responder sends back instead of data (its handler threw). */
export const remoteErrorSchema = z.object({
  message: z.string().max(MAX_REMOTE_MESSAGE_LENGTH),
  code: z.string().min(1).max(MAX_REMOTE_CODE_LENGTH).optional(),
});

const replyItemSchema = z
  .object({
    requestId: z.string().regex(REQUEST_ID),
    data: z.unknown().optional(),
    error: remoteErrorSchema.optional(),
  })
  .refine((r) => "data" in r !== "error" in r, { message: "a reply has exactly one of data or error" });

/**
 * `reply` (client → server): a responder's answer to the request `requestId`, with `data` or
 * `error`. Not answered: a reply to a request that is no longer waiting (answered, timed out,
 * requester gone) is dropped. Batch form: `replies`, a list of such replies, instead.
 */
export const replyFrameSchema = z
  .object({
    type: z.literal("reply"),
    requestId: z.string().regex(REQUEST_ID).optional(),
    data: z.unknown().optional(),
    error: remoteErrorSchema.optional(),
    replies: z.array(replyItemSchema).min(1).max(MAX_BATCH_REQUESTS).optional(),
  })
  .refine(
    (r) =>
      r.replies === undefined ? r.requestId !== undefined && "data" in r !== "error" in r : r.requestId === undefined && !("data" in r) && !("error" in r),
    { message: "a reply has a requestId and exactly one of data or error, or replies (a batch)" },
  );

/** The body of `POST /v1/topics/{topic}/request`. */
export const requestBodySchema = z
  .object({
    data: z.unknown(),
    timeoutMs: timeoutSchema.optional(),
    durable: z.boolean().optional(),
  })
  .strict()
  .refine((b) => "data" in b, { message: "data: required" });

export type ServeFrame = z.infer<typeof serveFrameSchema>;
export type RequestFrame = z.infer<typeof requestFrameSchema>;
export type RequestItem = z.infer<typeof requestItemSchema>;
export type ReplyFrame = z.infer<typeof replyFrameSchema>;
export type ReplyItem = z.infer<typeof replyItemSchema>;
export type RequestBody = z.infer<typeof requestBodySchema>;
