/**
 * Waiting with a deadline and an `AbortSignal`: the one way every SDK call that waits (publish,
 * send, flush, ready, info, read, topics, subscribe) stops waiting. A wait ends with a
 * `DovetailError`: `timeout` when `timeoutMs` passed, `aborted` when the caller's signal fired
 * (an `AbortSignal.timeout()` signal counts as `timeout`), the signal's reason as `cause`.
 *
 * Like nats.js (`timeout` on requests, 20 s on the connection handshake) and the Durable Streams
 * client (`signal` on every call), but with a default on every call, so that a wrong URL or a
 * stopped bus never hangs a caller.
 */
import { DovetailError } from "../../protocol/errors.ts";

/** Options of every call that waits. */
export interface WaitOptions {
  /** Stop waiting when this signal aborts (rejects with `aborted`, or `timeout` for `AbortSignal.timeout()`). */
  signal?: AbortSignal | undefined;
  /** Stop waiting after this many milliseconds (rejects with `timeout`). `Infinity` waits as long as it takes. */
  timeoutMs?: number | undefined;
}

/**
 * The default `timeoutMs` of every call that waits: publish confirms, HTTP calls, `ready()`, a
 * subscription being established. Long enough to ride out a reconnect (backoff tops out at 5 s)
 * and a topic waking from hibernation; short enough that a wrong URL shows up in half a minute.
 */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Longest delay timers take (2^31 - 1 ms, about 24.8 days); a longer one fires at once in Node and browsers. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A timeout given by the caller, or the default; throws `invalid_field` for a negative or NaN one.
 * Anything longer than a timer can wait is `Infinity`.
 */
export function timeoutOf(options: WaitOptions | undefined, fallbackMs: number = DEFAULT_TIMEOUT_MS): number {
  const ms = options?.timeoutMs ?? fallbackMs;
  if (typeof ms !== "number" || Number.isNaN(ms) || ms < 0)
    throw new DovetailError("invalid_field", `timeoutMs: expected a number >= 0 or Infinity, got ${String(ms)}`);
  return ms > MAX_TIMER_MS ? Infinity : ms;
}

/**
 * The error a wait ends with when `signal` aborted: `timeout` for the DOM's `TimeoutError`
 * (`AbortSignal.timeout()`), our own error when the signal carries one, `aborted` otherwise.
 *
 * @example
 * abortError(AbortSignal.abort(), "publish to t").code // "aborted"
 */
export function abortError(signal: AbortSignal, what: string): DovetailError {
  const reason: unknown = signal.reason;
  if (reason instanceof DovetailError) return reason;
  if ((reason as { name?: unknown } | null)?.name === "TimeoutError")
    return new DovetailError("timeout", `${what}: timed out (the signal's timeout)`, {}, { cause: reason });
  return new DovetailError("aborted", `${what}: aborted by the caller's signal`, {}, { cause: reason });
}

export function timeoutError(what: string, ms: number, cause?: unknown): DovetailError {
  const why = cause instanceof Error ? ` (last error: ${cause.message})` : "";
  return new DovetailError("timeout", `${what}: no answer within ${ms} ms${why}`, {}, cause === undefined ? undefined : { cause });
}

/** A signal that never aborts, for runs without a deadline or caller signal. */
const NEVER = new AbortController().signal;

/**
 * Run `run` until it settles, the deadline passes or the caller's signal aborts, whichever comes
 * first. `run` gets a signal that aborts (with the DovetailError the wait rejects with) in the
 * last two cases, to stop what it started; the wait does not depend on it listening.
 * `onGiveUp` may replace that error (for example to say whether a message was sent).
 *
 * @example
 * const page = await waitFor("read t", { timeoutMs: 5000 }, (signal) => fetch(url, { signal }));
 */
export function waitFor<T>(
  what: string,
  options: WaitOptions | undefined,
  run: (signal: AbortSignal) => Promise<T>,
  onGiveUp?: (error: DovetailError) => DovetailError,
): Promise<T> {
  const timeoutMs = timeoutOf(options);
  const signal = options?.signal;
  if (signal?.aborted) {
    const error = abortError(signal, what);
    return Promise.reject(onGiveUp ? onGiveUp(error) : error);
  }
  if (!signal && timeoutMs === Infinity) return run(NEVER);
  const controller = new AbortController();
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const finish = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const giveUp = (error: DovetailError) => {
      if (controller.signal.aborted) return;
      finish();
      controller.abort(error);
      reject(onGiveUp ? onGiveUp(error) : error);
    };
    const onAbort = () => giveUp(abortError(signal!, what));
    signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== Infinity) timer = setTimeout(() => giveUp(timeoutError(what, timeoutMs)), timeoutMs);
    run(controller.signal).then(
      (value) => {
        if (controller.signal.aborted) return;
        finish();
        resolve(value);
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        finish();
        reject(error);
      },
    );
  });
}

/**
 * Wait `ms`, or reject with the signal's reason when it aborts first.
 *
 * @example
 * await sleep(100, signal);
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
