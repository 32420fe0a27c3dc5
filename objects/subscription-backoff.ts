/**
 * The webhook retry schedule of Durable Streams subscriptions (protocol 7.1): exponential backoff
 * from 1 s to 60 s with 20 % jitter. The subscription object persists the time it computes
 * (objects/subscription.ts), so eviction and restarts keep the schedule.
 *
 * @example
 * retryDelayMs(1) // 800..1200
 * retryDelayMs(7) // 48000..72000 (the 60 s cap, jittered)
 */

/** The first retry waits this long, doubling after each failure… */
export const RETRY_BASE_MS = 1_000;
/** …up to this. */
export const RETRY_MAX_MS = 60_000;
/** Each delay is moved by up to this fraction either way. */
export const RETRY_JITTER = 0.2;

/** The delay before the next attempt after `failures` failed attempts in a row (≥ 1). `random` in [0, 1). */
export function retryDelayMs(failures: number, random = Math.random()): number {
  const base = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (1 + RETRY_JITTER * (random * 2 - 1)));
}
