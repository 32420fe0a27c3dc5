/**
 * Where a reader starts in a topic's log: a subscription, a read, a consumer group's start or
 * reset. Its own file because both the core frames (frames.ts) and the group frames (groups.ts)
 * use it.
 */
import { z } from "zod";

/** A non-negative integer that survives JSON and JavaScript numbers exactly. */
export const offsetSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * An offset, the first retained message (`earliest`), the next message to be written
 * (`latest`), or the first message stored at or after a time (milliseconds since the epoch).
 */
export const subscribeFromSchema = z.union([offsetSchema, z.literal("earliest"), z.literal("latest"), z.object({ time: z.number().int().min(0) })]);
export type SubscribeFrom = z.infer<typeof subscribeFromSchema>;
