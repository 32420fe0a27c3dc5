/**
 * Loads the Node-API addon built by `node-gyp rebuild` (see binding.gyp, native/shm.c).
 * Only setup and sleeping/waking are native; the record path is JavaScript over the mapping.
 */
import { createRequire } from "node:module";

export type WaitResult = "ok" | "timed-out" | "not-equal" | "fault";

export interface ShmNative {
  /** Map `path`; create it exclusively with `createBytes` bytes when > 0, else open it. */
  map(path: string, createBytes: number): ArrayBuffer;
  /** Detach the buffer (every view becomes length 0) and munmap now. */
  unmap(buffer: ArrayBuffer): void;
  /** FUTEX_WAIT (shared, not private) on the u32 at `byteOffset`; timeoutMs < 0 waits forever. */
  futexWait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): WaitResult;
  /** The same wait on a libuv pool thread, so the event loop keeps running. */
  futexWaitAsync(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): Promise<WaitResult>;
  /** FUTEX_WAKE up to `count` waiters in any process; returns how many woke. */
  futexWake(buffer: ArrayBuffer, byteOffset: number, count: number): number;
}

const require = createRequire(import.meta.url);

function load(): ShmNative {
  const candidates = ["../build/Release/dovetail_shm.node", "../build/Debug/dovetail_shm.node"];
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      return require(candidate) as ShmNative;
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(
    "@dovetail/local-node: native addon not built. Run `npm run build:native -w @dovetail/local-node` " +
      "(needs a C compiler, make and python3 for node-gyp).",
    { cause: lastError },
  );
}

export const native: ShmNative = load();
