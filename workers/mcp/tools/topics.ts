/**
 * Topic tools: `publish` (as `POST /v1/topics/{topic}/messages`) and `read_topic` (as
 * `GET /v1/topics/{topic}/messages`), calling the routes' own functions (workers/routes/topics.ts).
 */
import type { Context } from "hono";
import { z } from "zod";
import { DovetailError } from "../../../protocol/errors.ts";
import { producerSchema, publishMessageSchema } from "../../../protocol/frame-schemas.ts";
import type { SubscribeFrom } from "../../../protocol/frames.ts";
import type { GatewayEnv } from "../../gateway-env.ts";
import { MAX_READ_LIMIT, publishBody, readLimit, readMessagesJson, readStart, topicInfo } from "../../routes/topics.ts";
import { defineTool, topicName } from "../tool.ts";

const offset = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const message = publishMessageSchema.shape;

export const publish = defineTool({
  name: "publish",
  title: "Publish to a topic",
  description:
    "Append a message to a topic's durable log; subscribers and consumer groups get it. Give `data` (any JSON value) for one message, " +
    "or `messages` (a list of {data, key?, headers?, ...}) for a batch stored together. Answers the offsets assigned. Needs the publish scope on the topic.",
  input: z
    .object({
      topic: topicName,
      ...publishMessageSchema.shape,
      data: message.data.describe("The message: any JSON value (or give `bytes`, base64, for binary)"),
      key: message.key.describe("Optional key: consumer groups ordered by key keep one key's messages in order"),
      headers: message.headers.describe("Optional string headers"),
      messages: z.array(publishMessageSchema).min(1).optional().describe("A batch instead of one message: each item as the single-message fields"),
      producer: producerSchema.optional().describe("Idempotent producer stamp {id, seq} of a batch: the topic stores each (id, seq) once"),
    })
    .strict(),
  scope: { action: "publish", topic: (input) => input.topic },
  hints: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async run(c, { topic: _topic, messages, producer, ...message }, topic) {
    if (messages !== undefined && Object.keys(message).length > 0) {
      throw new DovetailError("invalid_field", "messages: give one message's fields (data, bytes, key, ...) or messages (a batch), not both");
    }
    if (messages === undefined && producer !== undefined) throw new DovetailError("invalid_field", "producer: only a batch (messages) carries a producer");
    return publishBody(c, topic!, messages === undefined ? message : { messages, producer });
  },
});

/** The offset `last` messages before the head (not before the earliest kept). */
async function lastStart(c: Context<GatewayEnv>, topic: string, last: number): Promise<SubscribeFrom> {
  const info = await topicInfo(c, topic);
  return Math.max(info.earliest, info.head - last);
}

export const readTopic = defineTool({
  name: "read_topic",
  title: "Read a topic",
  description:
    "Read up to `limit` messages of a topic in offset order, from `from` (an offset, earliest or latest), from `since` (a time), " +
    "or the `last` N messages. Answers {messages: [{offset, time, data|bytes, key?, headers?}], next, head, earliest}: read on from `next`. " +
    "A topic nobody wrote to reads as empty. Needs the subscribe scope on the topic.",
  input: z
    .object({
      topic: topicName,
      from: z
        .union([offset, z.enum(["earliest", "latest"])])
        .optional()
        .describe("First offset to read (default earliest)"),
      since: z
        .union([offset, z.string().max(64)])
        .optional()
        .describe("Read from the first message at or after this time: ms since the epoch or an ISO 8601 date"),
      last: z.number().int().min(1).max(MAX_READ_LIMIT).optional().describe("Read the last N messages instead"),
      limit: z.number().int().min(1).max(MAX_READ_LIMIT).optional().describe("Most messages to answer (default 100)"),
    })
    .strict()
    .refine((i) => [i.from, i.since, i.last].filter((x) => x !== undefined).length <= 1, { message: "give at most one of from, since or last" }),
  scope: { action: "subscribe", topic: (input) => input.topic },
  hints: { readOnlyHint: true, openWorldHint: false },
  async run(c, input, topic) {
    const limit = input.last ?? readLimit(input.limit === undefined ? undefined : String(input.limit));
    const from =
      input.last !== undefined
        ? await lastStart(c, topic!, input.last)
        : readStart(input.since === undefined ? undefined : String(input.since), input.from === undefined ? undefined : String(input.from));
    return JSON.parse(await readMessagesJson(c, topic!, from, limit));
  },
});

export const topicTools = [publish, readTopic];
