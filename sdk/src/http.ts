/**
 * The SDK's one HTTP call: bearer token, JSON in and out, and every failure as a DovetailError
 * (the server's error body rebuilt by `DovetailError.fromWire`, `Retry-After` folded into
 * `retryAfterMs`, an unreachable bus as `closed`). Used by the bus client and the admin client.
 */
import { DovetailError } from "../../protocol/errors.ts";
import type { FetchLike } from "./transport.ts";

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
  fetch?: FetchLike;
  token?: string;
}

/**
 * @example
 * const info = await requestJson({ token }, "http://127.0.0.1:8787", "GET", "/v1/topics/t");
 */
export async function requestJson(options: HttpOptions, base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const fetchFn = options.fetch ?? (globalThis.fetch as FetchLike);
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = `${base}${path}`;
  let res: Response;
  try {
    res = await fetchFn(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (error) {
    throw new DovetailError("closed", `cannot reach ${base}: ${(error as Error).message ?? String(error)}`, {}, { cause: error });
  }
  const text = await res.text();
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
