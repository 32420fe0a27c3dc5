/**
 * How a topic's RPC methods report failure. Workers RPC carries a thrown error's message but not
 * its class or extra fields, so expected failures travel as values and the gateway rebuilds the
 * typed error with {@link unwrap}. Unexpected exceptions still throw (and become `internal`).
 */
import { DovetailError, type ErrorBody } from "../sdk/src/errors.ts";

export type RpcResult<T> = { ok: true; value: T } | { ok: false; error: ErrorBody["error"] };

/** Run `fn`, turning a DovetailError into a failed result. */
export async function rpcResult<T>(fn: () => T | Promise<T>): Promise<RpcResult<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    if (error instanceof DovetailError) return { ok: false, error: error.toBody().error };
    throw error;
  }
}

/** The value of a result, or its error rebuilt as a DovetailError. */
export function unwrap<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw DovetailError.fromWire(result.error);
}
