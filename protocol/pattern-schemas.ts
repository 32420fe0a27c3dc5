/**
 * Pattern subscriptions, server side: the zod schemas of the frames a client sends on a pattern
 * socket (protocol/patterns.ts) and their one parser. Kept apart from patterns.ts so that clients,
 * which only encode these frames, never load zod (decision 025).
 */
import { z } from "zod";
import { creditFrameSchema, issueText, readClientFrame, unsubscribeFrameSchema, type CreditFrame, type UnsubscribeFrame } from "./frame-schemas.ts";
import { DEFAULT_CREDIT, MAX_CREDIT, parseFailure, type ParseResult } from "./frames.ts";
import { MAX_PATTERN_TOPICS, type PatternSubscribeFrame } from "./patterns.ts";
import { offsetSchema } from "./subscribe-from.ts";
import { topicNameProblem } from "./topic-name.ts";

const topicNameSchema = z.string().refine((t) => topicNameProblem(t) === null, { message: "not a valid topic name" });

export const patternSubscribeFrameSchema = z.object({
  type: z.literal("subscribe"),
  id: offsetSchema,
  from: z.union([z.literal("earliest"), z.literal("latest"), z.object({ time: z.number().int().min(0) })]).default("latest"),
  credit: z.number().int().min(0).max(MAX_CREDIT).default(DEFAULT_CREDIT),
  cursors: z
    .record(topicNameSchema, offsetSchema)
    .refine((c) => Object.keys(c).length <= MAX_PATTERN_TOPICS, { message: `at most ${MAX_PATTERN_TOPICS} cursors` })
    .optional(),
  startedAt: z.number().int().min(0).optional(),
});

export type PatternClientFrame = Required<Pick<PatternSubscribeFrame, "type" | "id" | "from" | "credit">> & PatternSubscribeFrame;

const SCHEMAS = { subscribe: patternSubscribeFrameSchema, credit: creditFrameSchema, unsubscribe: unsubscribeFrameSchema } as const;

/** Parse one frame a client sent on a pattern socket: the typed frame, or the typed error (with its `id` when readable). */
export function parsePatternClientFrame(raw: string | ArrayBuffer): ParseResult<PatternClientFrame | CreditFrame | UnsubscribeFrame> {
  const read = readClientFrame(raw);
  if (!read.ok) return read;
  const obj = read.frame;
  if (!Object.hasOwn(SCHEMAS, obj.type)) {
    return parseFailure(
      "unknown_type",
      `a pattern socket takes subscribe, credit and unsubscribe frames, not ${JSON.stringify(obj.type).slice(0, 64)}`,
      obj.id,
    );
  }
  const parsed = SCHEMAS[obj.type as keyof typeof SCHEMAS].safeParse(obj);
  if (!parsed.success) return parseFailure("invalid_field", issueText(parsed.error), obj.id);
  return { ok: true, frame: parsed.data as PatternClientFrame | CreditFrame | UnsubscribeFrame };
}
