/**
 * Small helpers shared by the ring's producer, consumer and entry points: process liveness, the
 * wall clock as the slots store it, and the constants more than one of them uses.
 */

export const TWO_POW_32 = 4294967296;
/** Upper bound of one futex sleep, so waiters re-check staleness and close() promptly. */
export const WAIT_SLICE_MS = 250;

/** Whether process `pid` exists (EPERM: it does, under another user). */
export function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Wall clock in ms, mod 2^32; compared with modular subtraction, so the wrap is harmless. */
export function nowMs32(): number {
  return (Date.now() % TWO_POW_32) | 0;
}
