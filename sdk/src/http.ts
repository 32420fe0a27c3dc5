/**
 * The SDK's one HTTP call: bearer token, JSON in and out, and every failure as a DovetailError
 * (the server's error body rebuilt by `DovetailError.fromWire`, `Retry-After` folded into
 * `retryAfterMs`, an unreachable bus as `closed`, no answer in time as `timeout`). Used by the bus
 * client and the admin client.
 */
import { DovetailError } from "../../protocol/errors.ts";
import { credentials, sameTokenError, type Credentials, type TokenSource } from "./token.ts";
import type { FetchLike } from "./transport.ts";
import { waitFor, type WaitOptions } from "./wait.ts";

/** The HTTP and WebSocket bases of a bus URL given as http(s):// or ws(s)://. */
export interface BusBases {
  httpBase: string;
  wsBase: string;
}

/**
 * Read a bus URL once for every client. Throws `invalid_field` for anything else.
 *
 * @example
 * busBases("https://bus.example/") // { httpBase: "https://bus.example", wsBase: "wss://bus.example" }
 */
export function busBases(url: string): BusBases {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DovetailError("invalid_field", `url: not a URL: ${JSON.stringify(url)}`);
  }
  if (!/^(https?|wss?):$/.test(u.protocol)) throw new DovetailError("invalid_field", `url: expected http(s) or ws(s), got ${u.protocol}`);
  const path = u.pathname.replace(/\/+$/, "");
  const secure = u.protocol === "https:" || u.protocol === "wss:";
  return { httpBase: `${secure ? "https" : "http"}://${u.host}${path}`, wsBase: `${secure ? "wss" : "ws"}://${u.host}${path}` };
}

export interface HttpOptions {
  fetch?: FetchLike | undefined;
  /** A token, or a function returning one (called for every request). */
  token?: TokenSource | undefined;
  /** Already-made credentials (the bus keeps one for all its calls); wins over `token`. */
  credentials?: Credentials | undefined;
}

/**
 * One JSON request. Waits at most `wait.timeoutMs` (default 30 s) for the whole exchange, answer
 * body included, and stops when `wait.signal` aborts. With a token function, a 401 is retried
 * once with a fresh token (never with the refused one).
 *
 * @example
 * const info = await requestJson({ token }, "http://127.0.0.1:8787", "GET", "/v1/topics/t", undefined, { timeoutMs: 5000 });
 */
export async function requestJson(options: HttpOptions, base: string, method: string, path: string, body?: unknown, wait?: WaitOptions): Promise<unknown> {
  const creds = options.credentials ?? credentials(options.token);
  return waitFor(`${method} ${path}`, wait, async (signal) => {
    let token = await creds.get();
    for (let refreshed = false; ; refreshed = true) {
      try {
        return await requestOnce(options.fetch, token, base, method, path, body, signal);
      } catch (error) {
        if (!(error instanceof DovetailError) || error.code !== "unauthorized" || !creds.refreshable || refreshed) throw error;
        const fresh = await creds.get();
        if (fresh === token) throw sameTokenError(error);
        token = fresh;
      }
    }
  });
}

async function requestOnce(
  fetchImpl: FetchLike | undefined,
  token: string | undefined,
  base: string,
  method: string,
  path: string,
  body: unknown,
  signal: AbortSignal,
): Promise<unknown> {
  const fetchFn = fetchImpl ?? (globalThis.fetch as FetchLike);
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = `${base}${path}`;
  let res: Response;
  let text: string;
  try {
    res = await fetchFn(url, { method, headers, signal, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    text = await res.text();
  } catch (error) {
    if (signal.aborted) throw signal.reason; // the wait is over; waitFor has its error
    throw new DovetailError("closed", `cannot reach ${base}: ${(error as Error).message ?? String(error)}`, {}, { cause: error });
  }
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const error = DovetailError.fromWire((parsed as { error?: unknown } | null)?.error ?? {}, `HTTP ${res.status} from ${url}`);
    const retryAfter = res.headers.get("Retry-After");
    if (error.code === "rate_limited" && error.details.retryAfterMs === undefined && retryAfter) error.details.retryAfterMs = Number(retryAfter) * 1000;
    throw error;
  }
  return parsed;
}
