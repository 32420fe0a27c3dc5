/**
 * Transports: how the SDK opens a WebSocket to a topic. Runtime-free by design (no `node:`
 * imports): the default uses the global `WebSocket` (Node >= 22, browsers, Workers), and
 * {@link fetchTransport} upgrades through any `fetch` (a Worker's service binding, or
 * `exports.default.fetch` inside workerd). Other transports plug in behind {@link Transport}
 * (nats.js keeps `transport.ts` runtime-free the same way).
 */
import { DovetailError } from "../../protocol/errors.ts";

/** The part of the standard WebSocket the SDK uses. Browsers', undici's and workerd's all fit. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
  addEventListener(type: "error", listener: (event: unknown) => void): void;
}

/** Where to connect and with which credential. */
export interface TransportTarget {
  /** `ws:` or `wss:` URL of the topic's WebSocket route, without credentials. */
  url: string;
  /** Bearer token, if any. The transport decides how to carry it (header or query). */
  token?: string | undefined;
  /**
   * Aborts when the SDK stops waiting for this attempt (the connect timeout, or the bus closed): a
   * transport should stop opening and reject. The SDK does not depend on it: a socket that opens
   * after the abort is closed.
   */
  signal?: AbortSignal | undefined;
}

/**
 * Opens one WebSocket. Resolves once the socket is open (frames may be sent), rejects with a
 * DovetailError when it cannot be opened or `target.signal` aborts.
 */
export type Transport = (target: TransportTarget) => Promise<SocketLike>;

/** WebSocket readyState values (the constants are not on every runtime's global). */
export const OPEN = 1;

/**
 * How a token travels on a WebSocket URL. Browsers cannot set headers on a WebSocket, so the
 * gateway accepts `?token=` on WebSocket routes. Kept as one function so the scheme can change
 * in one place.
 *
 * @example
 * webSocketUrlWithToken("ws://h/v1/topics/t/ws", "k") // "ws://h/v1/topics/t/ws?token=k"
 */
export function webSocketUrlWithToken(url: string, token: string | undefined): string {
  if (!token) return url;
  const u = new URL(url);
  u.searchParams.set("token", token);
  return u.toString();
}

/**
 * The default transport: the runtime's global `WebSocket`, token in the query string.
 *
 * @example
 * connect(url, { transport: webSocketTransport() })
 */
export function webSocketTransport(WebSocketImpl?: new (url: string) => SocketLike): Transport {
  return (target) =>
    new Promise<SocketLike>((resolve, reject) => {
      const Impl = WebSocketImpl ?? (globalThis as { WebSocket?: new (url: string) => SocketLike }).WebSocket;
      if (!Impl) {
        reject(new DovetailError("closed", "this runtime has no global WebSocket; pass a transport (for example fetchTransport(fetch))"));
        return;
      }
      let ws: SocketLike;
      try {
        ws = new Impl(webSocketUrlWithToken(target.url, target.token));
      } catch (error) {
        reject(new DovetailError("closed", `cannot open ${target.url}: ${String(error)}`, {}, { cause: error }));
        return;
      }
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        try {
          ws.close();
        } catch {
          // not open yet; the runtime drops it
        }
        reject(new DovetailError("closed", `stopped connecting to ${target.url}`, {}, { cause: target.signal?.reason }));
      };
      const settle = () => {
        settled = true;
        target.signal?.removeEventListener("abort", onAbort);
      };
      (ws as unknown as { binaryType?: string }).binaryType = "arraybuffer";
      (ws as unknown as EventTarget).addEventListener("open", () => {
        if (settled) return;
        settle();
        resolve(ws);
      });
      ws.addEventListener("error", (event) => {
        if (settled) return;
        settle();
        const cause = (event as { error?: unknown }).error ?? event;
        reject(new DovetailError("closed", `cannot connect to ${target.url}`, {}, { cause }));
      });
      ws.addEventListener("close", (event) => {
        if (settled) return;
        settle();
        reject(new DovetailError("closed", `connection to ${target.url} closed before it opened (code ${event.code})`));
      });
      if (target.signal?.aborted) onAbort();
      else target.signal?.addEventListener("abort", onAbort, { once: true });
    });
}

export type FetchLike = (input: string | Request, init?: RequestInit) => Promise<Response>;

/**
 * A transport that upgrades through `fetch` with `Upgrade: websocket` and accepts the socket
 * the response carries: how a Worker reaches the bus through a service binding, and how the
 * workerd tests reach the gateway. The token travels as `Authorization: Bearer`.
 *
 * @example
 * connect("https://bus.internal", { transport: fetchTransport(env.BUS.fetch.bind(env.BUS)) })
 */
export function fetchTransport(fetchFn: FetchLike): Transport {
  return async (target) => {
    const url = target.url.replace(/^ws(s?):/, "http$1:");
    const headers: Record<string, string> = { Upgrade: "websocket" };
    if (target.token) headers.Authorization = `Bearer ${target.token}`;
    let res: Response;
    try {
      res = await fetchFn(url, target.signal ? { headers, signal: target.signal } : { headers });
    } catch (error) {
      throw new DovetailError("closed", `cannot connect to ${url}`, {}, { cause: error });
    }
    const ws = (res as Response & { webSocket?: (SocketLike & { accept(): void }) | null }).webSocket;
    if (!ws) {
      let body: unknown = null;
      try {
        body = ((await res.json()) as { error?: unknown }).error;
      } catch {
        // not a JSON error body
      }
      throw body ? DovetailError.fromWire(body) : new DovetailError("closed", `upgrade refused with HTTP ${res.status}`);
    }
    ws.accept();
    return ws;
  };
}
