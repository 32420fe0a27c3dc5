/**
 * How a topic's RPC methods report failure. Workers RPC carries a thrown error's message but not
 * its class or extra fields, so expected failures travel as values and the gateway rebuilds the
 * typed error with {@link unwrap}. Unexpected exceptions still throw (and become `internal`).
 *
 * {@link knownError} is the one place that recognises a storage failure: SQLite's SQLITE_FULL,
 * which workerd reports as an `Error` whose message is `database or disk is full: SQLITE_FULL`
 * (the SQLite text, then the code's name) both for a full disk and for a Durable Object at its
 * size limit. It becomes `storage_full` (507) wherever it surfaces: in the commit queue, in an
 * RPC result, in an error frame, and at the gateway when the runtime reset the object and the
 * error reached the caller instead (docs/architecture.md, "Full disk").
 */
import { logLine } from "../protocol/log-line.ts";
import { DovetailError, type ErrorBody } from "../protocol/errors.ts";

export type RpcResult<T> = { ok: true; value: T } | { ok: false; error: ErrorBody["error"] };

/**
 * SQLite's text for SQLITE_FULL (`sqlite3_errstr`), which workerd's message starts with. Matched
 * without the code's name: a topic name may be `SQLITE_FULL`, but it cannot hold a space.
 */
const STORAGE_FULL = /database or disk is full/;

/** The message of a `storage_full` error. */
export const STORAGE_FULL_MESSAGE = "storage is full: nothing of this request was stored. Free space with retention (PATCH /v1/topics/{topic}) and retry";

/**
 * The typed error for `error`: a DovetailError as it is, a storage failure as `storage_full`,
 * anything else null (the caller reports it as `internal`).
 */
export function knownError(error: unknown): DovetailError | null {
  if (error instanceof DovetailError) return error;
  const message = error instanceof Error ? error.message : typeof error === "string" ? error : "";
  if (STORAGE_FULL.test(message)) return new DovetailError("storage_full", STORAGE_FULL_MESSAGE, {}, { cause: error });
  return null;
}

/** The typed error for `error`, `internal` (logged, with `where` naming the object) when it is none we know. */
export function asDovetailError(error: unknown, where: string): DovetailError {
  const known = knownError(error);
  if (known) return known;
  console.error(logLine("error", "unexpected error", { where, error }));
  return new DovetailError("internal", "internal error", {}, { cause: error });
}

/** Run `fn`, turning a DovetailError (or a storage failure, see {@link knownError}) into a failed result. */
export async function rpcResult<T>(fn: () => T | Promise<T>): Promise<RpcResult<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    const known = knownError(error);
    if (known) return { ok: false, error: known.toBody().error };
    throw error;
  }
}

/** The value of a result, or its error rebuilt as a DovetailError. */
export function unwrap<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw DovetailError.fromWire(result.error);
}
