/**
 * Reconnect policy: capped exponential backoff with jitter, and when to give up.
 *
 * Give-up policy. A connection (one topic socket, or `bus.ready()`) gives up when
 * - the bus refuses for good: `unauthorized` (after one fresh token from a token function),
 *   `forbidden`, `not_found`, `invalid_topic`, `invalid_field`, `unsupported_version`, or a
 *   deleted topic under a subscription. No retry can fix these, so none is made;
 * - `maxAttempts` consecutive attempts have failed; or
 * - it has been without a connection for `maxElapsedMs` (counted from its first attempt, or from
 *   the moment a live socket was lost).
 * Both limits are `Infinity` by default: a bus restart or a network outage of any length is
 * ridden out, while each call that waits has its own timeout (wait.ts). Set them to make a
 * connection fail for good instead: pending calls then reject with `closed` (the last error as
 * `cause`) and `bus.status()` yields a `failed` event.
 */

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
  /**
   * Longest time a connection may be down (from its first attempt, or from losing a live socket)
   * before it gives up like `maxAttempts`. Default `Infinity`.
   */
  maxElapsedMs?: number;
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

/**
 * One connection's retry budget: how long to wait after a failed attempt, or that it is time to
 * give up (`maxAttempts`, `maxElapsedMs`). The last retry is moved up so that it happens when
 * `maxElapsedMs` runs out rather than after.
 *
 * @example
 * const budget = new ReconnectBudget({ maxAttempts: 3 });
 * budget.down(Date.now());
 * budget.failed(Date.now()); // a delay in ms; null once the budget is spent
 */
export class ReconnectBudget {
  readonly #options: ReconnectOptions;
  readonly #random: () => number;
  #attempts = 0;
  #downSince: number | null = null;

  constructor(options: ReconnectOptions = {}, random: () => number = Math.random) {
    this.#options = options;
    this.#random = random;
  }

  /** Consecutive failed attempts so far. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Milliseconds without a connection at `now` (0 while connected). */
  downFor(now: number): number {
    return this.#downSince === null ? 0 : now - this.#downSince;
  }

  /** The connection is down from `now` on (a first attempt, or a live socket lost); no-op if already down. */
  down(now: number): void {
    this.#downSince ??= now;
  }

  /** An attempt succeeded: the budget is whole again. */
  connected(): void {
    this.#attempts = 0;
    this.#downSince = null;
  }

  /** An attempt failed at `now`: milliseconds to wait before the next one, or null to give up. */
  failed(now: number): number | null {
    this.down(now);
    this.#attempts += 1;
    if (this.#attempts >= (this.#options.maxAttempts ?? Infinity)) return null;
    const left = (this.#options.maxElapsedMs ?? Infinity) - this.downFor(now);
    if (left <= 0) return null;
    return Math.min(backoffDelayMs(this.#attempts - 1, this.#options, this.#random), left);
  }
}
