/**
 * The zod schemas of consumer groups on the wire: group settings, the `consume` and `settle`
 * frames, and the HTTP pull and admin bodies, as the server checks them (workers/routes/groups.ts,
 * and the topic through frame-schemas.ts). Kept apart from groups.ts, which clients import, so
 * that clients never load zod (decision 025); groups.ts re-exports the types.
 */
import { z } from "zod";
import {
  GROUP_NAME,
  MAX_ACK_WAIT_MS,
  MAX_BACKOFF_MS,
  MAX_BACKOFF_STEPS,
  MAX_FETCH_JOBS,
  MAX_FETCH_WAIT_MS,
  MAX_GROUP_MAX_ACK_PENDING,
  MAX_MAX_DELIVER,
  MAX_MEMBER_MAX_ACK_PENDING,
  MAX_NACK_DELAY_MS,
  MAX_REASON_LENGTH,
  MAX_SETTLE_JOBS,
  MEMBER_NAME,
  MIN_ACK_WAIT_MS,
  SETTLE_OPS,
} from "./groups.ts";
import { subscribeFromSchema } from "./subscribe-from.ts";

export const groupNameSchema = z.string().regex(GROUP_NAME, "a group name is 1–64 characters of A-Z a-z 0-9 _ -");
export const memberNameSchema = z.string().regex(MEMBER_NAME, "a member name is 1–128 characters of A-Z a-z 0-9 _ . : -");
const count = (max: number) => z.number().int().min(1).max(max);

/**
 * A group's settings, given when it is created (by `PUT .../groups/{group}`, or by the first
 * `consume` or fetch that names it). Every field has a default.
 */
export const groupSettingsSchema = z
  .object({
    /** Where a new group starts: an offset, `earliest`, `latest` (default) or `{ time }`. */
    start: subscribeFromSchema.optional(),
    /** A delivered message not settled within this is delivered again, to any member. */
    ackWaitMs: z.number().int().min(MIN_ACK_WAIT_MS).max(MAX_ACK_WAIT_MS).optional(),
    /** Deliveries before a message goes to the dead-letter topic. */
    maxDeliver: count(MAX_MAX_DELIVER).optional(),
    /** Wait before redelivery after the n-th failed delivery (the last step repeats). */
    backoffMs: z.array(z.number().int().min(0).max(MAX_BACKOFF_MS)).max(MAX_BACKOFF_STEPS).optional(),
    /** Messages in flight to the whole group, at most. */
    maxAckPending: count(MAX_GROUP_MAX_ACK_PENDING).optional(),
    /** Messages with the same key are never in flight twice at once and go in offset order. */
    orderedByKey: z.boolean().optional(),
    /** Where dead letters go; default `{topic}.dlq`. */
    deadLetterTopic: z.string().optional(),
    /** Send expired messages to the dead-letter topic (reason `expired`) instead of dropping them. */
    deadLetterExpired: z.boolean().optional(),
    /** A message older than this is expired for this group (its own `expiresAt` also applies). */
    messageTtlMs: z
      .number()
      .int()
      .min(1)
      .max(365 * 24 * 60 * 60 * 1000)
      .optional(),
  })
  .strict();
export type GroupSettingsInput = z.infer<typeof groupSettingsSchema>;

/** One delivery of a message to a member, named by offset and delivery count. */
export const jobRefSchema = z.object({
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  delivery: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});
export type JobRef = z.infer<typeof jobRefSchema>;

/**
 * What a member says about jobs it holds: `ack` (done), `nack` (failed: deliver again, after
 * `delayMs` or the group's backoff), `progress` (still working: the ack deadline starts again),
 * `term` (never deliver again: dead letter with reason `terminated`), `release` (never started:
 * back uncounted; the member is leaving). All jobs of one request are settled, or none is (each
 * must be held by the member, at that delivery). Only `release` may name no job (a member leaving
 * with nothing received).
 */
export const settleSchema = z.object({
  op: z.enum(SETTLE_OPS),
  jobs: z.array(jobRefSchema).max(MAX_SETTLE_JOBS),
  /** `nack`: wait this long before delivering again (default: the group's backoff). */
  delayMs: z.number().int().min(0).max(MAX_NACK_DELAY_MS).optional(),
  /** `nack`/`term`: why, kept with a dead letter (`error` header). */
  reason: z.string().max(MAX_REASON_LENGTH).optional(),
});
export type Settle = z.infer<typeof settleSchema>;

/**
 * `consume` (client → server): join `group` as a member; jobs start to arrive as `jobs` frames.
 * One consumer per socket; closing the socket leaves the group, and what the member held is
 * delivered again at once. `create` gives the settings if the group does not exist yet.
 * Answered by `consuming` or `error`.
 */
export const consumeFrameSchema = z.object({
  type: z.literal("consume"),
  id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  group: groupNameSchema,
  /** Most jobs held by this member at once (its prefetch). */
  maxAckPending: count(MAX_MEMBER_MAX_ACK_PENDING).optional(),
  create: groupSettingsSchema.optional(),
});
export type ConsumeFrame = z.infer<typeof consumeFrameSchema>;

/** `settle` (client → server): ack, nack, progress or term jobs this socket holds. Answered by `settled` or `error`. */
export const settleFrameSchema = settleSchema.extend({
  type: z.literal("settle"),
  id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type SettleFrame = z.infer<typeof settleFrameSchema>;

/** `POST /v1/topics/{topic}/groups/{group}/fetch`: up to `max` jobs, waiting up to `waitMs` for the first. */
export const fetchRequestSchema = z
  .object({
    member: memberNameSchema,
    max: count(MAX_FETCH_JOBS).optional(),
    waitMs: z.number().int().min(0).max(MAX_FETCH_WAIT_MS).optional(),
    create: groupSettingsSchema.optional(),
  })
  .strict();
export type FetchRequest = z.infer<typeof fetchRequestSchema>;

/** `POST /v1/topics/{topic}/groups/{group}/settle`: as the `settle` frame, from member `member`. */
export const settleRequestSchema = settleSchema.extend({ member: memberNameSchema }).strict();
export type SettleRequest = z.infer<typeof settleRequestSchema>;

/** `POST .../groups/{group}/reset`: move the group to `to`; everything pending is forgotten. */
export const resetRequestSchema = z.object({ to: subscribeFromSchema }).strict();

/** `POST .../groups/{group}/claim`: move jobs held longer than `minIdleMs` to `member` (like XAUTOCLAIM). */
export const claimRequestSchema = z
  .object({
    member: memberNameSchema,
    minIdleMs: z.number().int().min(0).max(MAX_ACK_WAIT_MS),
    max: count(MAX_FETCH_JOBS).optional(),
  })
  .strict();

/** `POST .../groups/{group}/replay`: deliver dead letters of this group again, read from its dead-letter topic. */
export const replayRequestSchema = z
  .object({
    /** First dead-letter offset to read (default: the dead-letter topic's earliest). */
    from: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    limit: count(MAX_FETCH_JOBS).optional(),
  })
  .strict();
