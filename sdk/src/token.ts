/**
 * Credentials: a fixed token, or a function the SDK calls before every connection and every
 * HTTP request, so that short-lived JWTs can be minted or refreshed as they are needed (the
 * Durable Streams client takes functions for its headers the same way).
 */
import { DovetailError } from "../../protocol/errors.ts";

/**
 * A bearer token, or a function returning one (sync or async). The function is called before
 * every WebSocket connection and HTTP request: cache inside it if minting is costly, but return a
 * fresh token once the bus has refused the previous one (the SDK calls it again exactly once
 * after an `unauthorized` refusal or a credential-ended close, and gives up if it returns the
 * same token).
 *
 * @example
 * connect(url, { token: async () => (await fetch("/api/bus-token")).text() })
 */
export type TokenSource = string | (() => string | Promise<string>);

/** The token source as the SDK uses it. */
export interface Credentials {
  /** The token to use now (undefined: send none). A failing function rejects with a DovetailError. */
  get(): Promise<string | undefined>;
  /** True when `get()` may return a different token next time (the source is a function). */
  readonly refreshable: boolean;
}

const NONE: Credentials = { get: async () => undefined, refreshable: false };

/**
 * @example
 * await credentials("k").get() // "k"
 */
export function credentials(source: TokenSource | undefined): Credentials {
  if (source === undefined || source === "") return NONE;
  if (typeof source === "string") {
    const token = source;
    return { get: async () => token, refreshable: false };
  }
  const fn = source;
  return {
    refreshable: true,
    async get() {
      let token: unknown;
      try {
        token = await fn();
      } catch (error) {
        // A DovetailError from the function keeps its code (throw `unauthorized` to stop); any
        // other failure (the token service is down) counts as a failed connection attempt.
        if (error instanceof DovetailError) throw error;
        throw new DovetailError("closed", `the token function failed: ${error instanceof Error ? error.message : String(error)}`, {}, { cause: error });
      }
      if (typeof token !== "string") throw new DovetailError("invalid_field", `token: the token function returned ${typeof token}, not a string`);
      return token === "" ? undefined : token;
    },
  };
}

/**
 * The error when a token function, asked for a fresh token after the bus refused one, returns the
 * refused token again: waiting and retrying could only loop.
 */
export function sameTokenError(refusal: DovetailError): DovetailError {
  return new DovetailError(
    "unauthorized",
    `the bus refused the token (${refusal.message}) and the token function returned the same token again; it must return a fresh one`,
    {},
    { cause: refusal },
  );
}
