/** Reconnect policy: capped exponential backoff with jitter. */

export interface ReconnectOptions {
  /** First retry waits about this long. Default 100 ms. */
  initialDelayMs?: number;
  /** No retry waits longer than this. Default 5000 ms. */
  maxDelayMs?: number;
  /**
   * Consecutive failed attempts before the connection gives up and pending operations fail with
   * `closed`. Default `Infinity`: keep trying until `bus.close()`.
   */
  maxAttempts?: number;
}

export const DEFAULT_INITIAL_DELAY_MS = 100;
export const DEFAULT_MAX_DELAY_MS = 5000;

/**
 * Delay before retry number `attempt` (0-based): `min(max, initial * 2^attempt)`, then "equal
 * jitter" (half fixed, half random) so many clients cut off together do not return together.
 *
 * @example
 * backoffDelayMs(3, { initialDelayMs: 100, maxDelayMs: 5000 }) // between 400 and 800
 */
export function backoffDelayMs(attempt: number, options: ReconnectOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const capped = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (random() * capped) / 2);
}
