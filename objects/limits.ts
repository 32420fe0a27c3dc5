/**
 * Deployment-wide limits and defaults, read from the Worker's environment (wrangler.toml
 * `[vars]`). Every value has a default so a bare deployment works; a bad value fails loudly at
 * the first request rather than silently falling back.
 */
import type { TopicLimits } from "../protocol/frames.ts";
import { MAX_PATTERN_TOPICS } from "../protocol/patterns.ts";
import type { Retention } from "./log.ts";

export interface LimitsEnv {
  MAX_MESSAGE_BYTES?: string;
  MAX_BATCH_MESSAGES?: string;
  MAX_BATCH_BYTES?: string;
  RETENTION_MAX_AGE_MS?: string;
  RETENTION_MAX_MESSAGES?: string;
  RETENTION_MAX_BYTES?: string;
  FLUSH_DELAY_MS?: string;
  /** Most topics one pattern subscription follows (protocol/patterns.ts; default MAX_PATTERN_TOPICS). */
  PATTERN_MAX_TOPICS?: string;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_BATCH_MESSAGES = 1000;
export const DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024;

export interface TopicSettings {
  limits: TopicLimits;
  retention: Retention;
  flushDelayMs: number;
}

function nonNegativeInt(env: LimitsEnv, name: keyof LimitsEnv, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return value;
}

export function settingsFromEnv(env: LimitsEnv): TopicSettings {
  return {
    limits: {
      maxMessageBytes: nonNegativeInt(env, "MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES),
      maxBatchMessages: nonNegativeInt(env, "MAX_BATCH_MESSAGES", DEFAULT_MAX_BATCH_MESSAGES),
      maxBatchBytes: nonNegativeInt(env, "MAX_BATCH_BYTES", DEFAULT_MAX_BATCH_BYTES),
    },
    retention: {
      maxAgeMs: nonNegativeInt(env, "RETENTION_MAX_AGE_MS", 0),
      maxMessages: nonNegativeInt(env, "RETENTION_MAX_MESSAGES", 0),
      maxBytes: nonNegativeInt(env, "RETENTION_MAX_BYTES", 0),
    },
    flushDelayMs: nonNegativeInt(env, "FLUSH_DELAY_MS", 0),
  };
}

/** Most topics one pattern subscription follows: `PATTERN_MAX_TOPICS`, at most (and by default) MAX_PATTERN_TOPICS. */
export function patternMaxTopics(env: LimitsEnv): number {
  return Math.min(MAX_PATTERN_TOPICS, nonNegativeInt(env, "PATTERN_MAX_TOPICS", MAX_PATTERN_TOPICS));
}

/** A topic commits at once when this many messages wait for the group commit, so one commit holds at most this many. */
export const MAX_PENDING_MESSAGES = 20_000;
