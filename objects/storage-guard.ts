/**
 * Storage guard: keeps a reserve of free space on the volume that holds the topics, so that a
 * full disk is a refusal (`storage_full`) and not a broken topic.
 *
 * Why a reserve: when SQLite cannot grow a file, workerd rolls back the whole transaction and
 * treats it as a critical error. It resets the object: its sockets drop (1006), the publishers'
 * frames are never answered (an SDK sends them again), and the caller of an RPC gets
 * `database or disk is full: SQLITE_FULL` instead of an answer. Worse, from then on every write
 * needs disk space: the write-ahead log holds pages that a checkpoint can only copy by growing
 * the database file, so even retention's deletes, a setting or an alarm fail until space
 * appears from elsewhere. Measured on a 30 MiB tmpfs (docs/architecture.md, "Full disk").
 *
 * So new messages are refused while less than the reserve is left. Deletes, settings, alarms and
 * the runtime's own bookkeeping are not refused: the reserve is theirs. After retention freed
 * messages, SQLite reuses their pages without growing the file, so that many bytes are admitted
 * again (down to half the reserve) although the volume's free space did not change.
 *
 * Free space is known only where something outside the runtime can measure it: the local bus
 * (`scripts/dev.mjs`) binds `DOVETAIL_STORAGE`, which answers `{ free, reserve }` in bytes for
 * the state folder. Without that binding (Cloudflare, the workerd tests, `wrangler dev`) the
 * guard admits everything; on Cloudflare a topic at its size limit gets SQLITE_FULL from the
 * insert itself, which only rolls back that statement, and the commit queue answers
 * `storage_full` (objects/rpc-result.ts).
 *
 * One guard per isolate (module state): every topic of the local bus writes to the same volume.
 */
import { env } from "cloudflare:workers";
import { DovetailError } from "../protocol/errors.ts";
import type { Retention, TopicLog } from "./log.ts";
import { STORAGE_FULL_MESSAGE } from "./rpc-result.ts";

/** The binding's answer: free bytes on the state volume, and the reserve to keep. */
export interface StorageReport {
  free: number;
  reserve: number;
}

/** How old a measurement may get while messages are written; near the reserve, {@link NEAR_REFRESH_MS}. */
export const STORAGE_REFRESH_MS = 200;
const NEAR_REFRESH_MS = 10;
/** A measurement not answered within this is given up (its request may have ended). */
const REFRESH_GIVE_UP_MS = 5_000;
/**
 * Disk bytes a stored byte is taken to cost until the next measurement: database pages, with
 * room for the write-ahead log growing by a large transaction (measured: about 1.05 on a
 * steady log of 256 KiB messages).
 */
const DISK_BYTES_PER_BYTE = 1.5;

export class StorageGuard {
  readonly #probe: () => Promise<StorageReport>;
  #free: number | null = null;
  #reserve = 0;
  #measuredAt = 0;
  /** Estimated disk bytes admitted since the last measurement was asked for. */
  #since = 0;
  /** Payload bytes retention freed while space was short: pages SQLite reuses without growing the file. */
  #credit = 0;
  #refreshStarted: number | null = null;

  constructor(probe: () => Promise<StorageReport>) {
    this.#probe = probe;
  }

  /** Admit a commit of `bytes` payload bytes, or throw `storage_full`. Measures again when due. */
  admit(bytes: number, now = Date.now()): void {
    this.#refresh(now);
    if (this.#free === null) return;
    const cost = bytes * DISK_BYTES_PER_BYTE;
    const left = this.#free - this.#since;
    if (left - cost >= this.#reserve) {
      this.#credit = 0; // space is not short: nothing to reuse
      this.#since += cost;
      return;
    }
    if (bytes <= this.#credit && left - cost >= this.#reserve / 2) {
      this.#credit -= bytes;
      this.#since += cost;
      return;
    }
    throw new DovetailError("storage_full", STORAGE_FULL_MESSAGE);
  }

  /** Retention removed `bytes` payload bytes. */
  freed(bytes: number): void {
    if (bytes > 0) this.#credit += bytes;
  }

  #refresh(now: number): void {
    if (this.#refreshStarted !== null && now - this.#refreshStarted < REFRESH_GIVE_UP_MS) return;
    const near = this.#free !== null && this.#free - this.#since < 2 * this.#reserve;
    if (now - this.#measuredAt < (near ? NEAR_REFRESH_MS : STORAGE_REFRESH_MS)) return;
    this.#refreshStarted = now;
    const before = this.#since;
    this.#probe().then(
      (report) => {
        const ok = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n) && n >= 0;
        this.#free = ok(report.free) ? report.free : null;
        this.#reserve = ok(report.reserve) ? report.reserve : 0;
        this.#measuredAt = Date.now();
        this.#since = Math.max(0, this.#since - before); // what was admitted before asking is in `free`
        this.#refreshStarted = null;
      },
      (error: unknown) => {
        console.error("storage guard: measuring free space failed", error);
        this.#measuredAt = Date.now();
        this.#refreshStarted = null;
      },
    );
  }
}

interface StorageEnv {
  DOVETAIL_STORAGE?: Fetcher;
}

const binding = (env as unknown as StorageEnv).DOVETAIL_STORAGE;

/** The isolate's guard; null without a `DOVETAIL_STORAGE` binding (nothing to measure). */
export const storageGuard: StorageGuard | null = binding
  ? new StorageGuard(async () => (await (await binding.fetch("http://storage/")).json()) as StorageReport)
  : null;

/** Most messages one retention step removes; each step is its own commit ({@link trimInSteps}). */
export const TRIM_STEP_MESSAGES = 10_000;

/**
 * Apply `retention` (the topic's own by default) in steps of at most {@link TRIM_STEP_MESSAGES}
 * messages, waiting for `commit` (the object's `storage.sync()`) after each: a long trim is many
 * small transactions, and each finished step stays done when a later one fails. What it frees
 * is admitted again by the guard. Returns the new earliest offset.
 */
export async function trimInSteps(log: TopicLog, now: number, commit: () => Promise<void>, retention?: Retention): Promise<number> {
  return trimToInSteps(log, log.retentionCut(now, retention), commit);
}

/** Trim the log's front up to offset `target` (`head`: every message), in steps as {@link trimInSteps}. */
export async function trimToInSteps(log: TopicLog, target: number, commit: () => Promise<void>): Promise<number> {
  while (log.earliest < target) {
    const bytes = log.info().bytes;
    log.trimTo(Math.min(target, log.earliest + TRIM_STEP_MESSAGES));
    storageGuard?.freed(bytes - log.info().bytes);
    await commit();
  }
  return log.earliest;
}
