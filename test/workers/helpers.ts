/**
 * Test helpers: real WebSockets to real topic objects through the real gateway, inside workerd.
 */
import { env, exports } from "cloudflare:workers";
import { KEYS_OBJECT_NAME } from "../../objects/keys.ts";
import type { Env } from "../../workers/env.ts";
import { parseServerFrame, type ClientFrame, type DeliveredMessage, type ServerFrame } from "../../protocol/frames.ts";
import type { PatternWelcomeFrame } from "../../protocol/patterns.ts";

/** What a topic socket receives (a pattern socket's welcome aside: pattern tests read frames as JSON). */
type SocketFrame = Exclude<ServerFrame, PatternWelcomeFrame> | { type: "pong" };

/**
 * This Worker's bindings, typed. (`Cloudflare.Env` from test/workers/env.d.ts stops resolving to
 * our Env once the RPC types of every bound class join the cycle, so tests take it from here.)
 */
export const bindings = env as unknown as Env;

let counter = 0;
/** A topic name no other test uses. */
export function freshTopic(prefix = "t"): string {
  counter += 1;
  return `${prefix}.${Date.now().toString(36)}.${counter}.${Math.random().toString(36).slice(2, 8)}`;
}

/** A fresh name safe as a stream path segment and a Durable Streams subscription id (no dots). */
export function freshPath(prefix = "t"): string {
  return freshTopic(prefix).replace(/\./g, "-");
}

/** Poll `fn` until it answers something truthy, and return that (fails after `timeoutMs`). */
export async function until<T>(fn: () => Promise<T | undefined | false>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let testKey: Promise<string> | null = null;
/**
 * The credential every helper request carries unless told otherwise: an API key of tenant
 * `default` with every scope and limits no test reaches, created once per test file in the
 * Keys object. Tests thus run with auth ON, as deployed (docs/security.md, "Tests").
 */
export function testCredential(): Promise<string> {
  const keys = bindings.KEYS;
  testKey ??= keys
    .get(keys.idFromName(KEYS_OBJECT_NAME))
    .create({
      name: "workers-tests",
      tenant: "default",
      scopes: ["publish:>", "subscribe:>", "consume:>", "admin:>"],
      rate: {
        requestsPerSecond: 1e9,
        burst: 1e9,
        framesPerSecond: 1e9,
        frameBurst: 1e9,
        bytesPerSecond: 1e9,
        byteBurst: 1e9,
        topicMessagesPerSecond: 1e9,
        topicMessageBurst: 1e9,
      },
    })
    .then((r: { key: string }) => r.key);
  return testKey;
}

/** The bus's Keys object. */
export function keysObject() {
  return bindings.KEYS.get(bindings.KEYS.idFromName(KEYS_OBJECT_NAME));
}

/** Issue an API key straight from the Keys object (any tenant). */
export async function issueKey(
  tenant: string,
  scopes: string[],
  extra: { rate?: Record<string, number>; expiresAt?: number } = {},
): Promise<{ id: string; key: string }> {
  const { key, record } = await keysObject().create({ name: "test", tenant, scopes, ...extra });
  return { id: record.id, key };
}

/** A request to the gateway with no credential added (security tests). */
export function anonymousFetch(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`http://bus.test${path}`, init));
}

/** A request to the gateway; carries {@link testCredential} unless `init` sets Authorization. */
export async function gatewayFetch(path: string, init?: RequestInit): Promise<Response> {
  const headers = new Headers(init?.headers);
  if (!headers.has("Authorization")) headers.set("Authorization", `Bearer ${await testCredential()}`);
  return exports.default.fetch(new Request(`http://bus.test${path}`, { ...init, headers }));
}

/** A connected client socket that queues every frame it receives for the test to await. */
export class TestSocket {
  readonly ws: WebSocket;
  readonly frames: SocketFrame[] = [];
  readonly raw: string[] = [];
  closed: { code: number; reason: string } | null = null;
  /** When true, every `messages` frame is answered with a `credit` frame for as many messages. */
  autoCredit = false;
  #waiters: (() => void)[] = [];
  #nextId = 1;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      const text = typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer);
      this.raw.push(text);
      const parsed = parseServerFrame(text);
      if (!parsed.ok) throw parsed.error;
      if (parsed.frame.type === "unknown") throw new Error(`this server sent a frame type its own protocol does not define: ${parsed.frame.name}`);
      this.frames.push(parsed.frame as SocketFrame);
      if (this.autoCredit && parsed.frame.type === "messages") this.send({ type: "credit", messages: parsed.frame.messages.length });
      this.#wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.#wake();
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  nextId(): number {
    return this.#nextId++;
  }

  send(frame: ClientFrame | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(text: string | ArrayBuffer): void {
    this.ws.send(text);
  }

  /** Wait until `predicate` holds over the frames received so far (fails after `timeoutMs`). */
  async until(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The first frame of `type` matching `match`, waiting for it. */
  async frame<T extends SocketFrame["type"]>(
    type: T,
    match: (f: Extract<SocketFrame, { type: T }>) => boolean = () => true,
  ): Promise<Extract<SocketFrame, { type: T }>> {
    let found: Extract<SocketFrame, { type: T }> | undefined;
    await this.until(() => {
      found = this.frames.find((f): f is Extract<SocketFrame, { type: T }> => f.type === type && match(f as never));
      return found !== undefined;
    }, `a ${type} frame`);
    return found!;
  }

  /** All delivered messages so far, in arrival order. */
  delivered(): DeliveredMessage[] {
    const out: DeliveredMessage[] = [];
    for (const f of this.frames) if (f.type === "messages") out.push(...f.messages);
    return out;
  }

  async waitDelivered(count: number, timeoutMs = 30_000): Promise<DeliveredMessage[]> {
    await this.until(() => this.delivered().length >= count, `${count} delivered messages (have ${this.delivered().length})`, timeoutMs);
    return this.delivered();
  }

  /** Publish and wait for the ack (or error) answering it. */
  async publish(messages: unknown[], producer?: { id: string; seq: number }) {
    const id = this.nextId();
    this.send({ type: "publish", id, messages, ...(producer ? { producer } : {}) });
    return this.answer(id);
  }

  async subscribe(from: unknown, credit?: number) {
    const id = this.nextId();
    this.send({ type: "subscribe", id, from, ...(credit !== undefined ? { credit } : {}) });
    return this.answer(id);
  }

  /** The ack/subscribed/unsubscribed/error frame carrying `id`. */
  async answer(id: number): Promise<Exclude<SocketFrame, { type: "pong" }>> {
    let found: Exclude<SocketFrame, { type: "pong" }> | undefined;
    await this.until(() => {
      found = this.frames.find(
        (f): f is Exclude<SocketFrame, { type: "pong" }> => f.type !== "messages" && f.type !== "pong" && f.type !== "welcome" && "id" in f && f.id === id,
      );
      return found !== undefined;
    }, `the answer to frame ${id}`);
    return found!;
  }

  close(): void {
    try {
      this.ws.close(1000, "test done");
    } catch {
      // already closed
    }
  }
}

/** Open a WebSocket to a topic through the gateway. */
export async function openSocket(
  topic: string,
  path = `/v1/topics/${encodeURIComponent(topic)}/ws`,
  /** `token`: the credential to send (`null`: none); the test credential by default. `headers`: more request headers. */
  options: { token?: string | null; headers?: Record<string, string> } = {},
): Promise<TestSocket> {
  const headers: Record<string, string> = { ...options.headers, Upgrade: "websocket" };
  const token = options.token === undefined ? await testCredential() : options.token;
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const res = await anonymousFetch(path, { headers });
  const ws = res.webSocket;
  if (!ws) throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
  ws.accept();
  return new TestSocket(ws);
}

/** Messages with `data: {n: i}` for i in [from, from+count). */
export function numbered(count: number, from = 0, extra: Record<string, unknown> = {}): { data: { n: number } }[] {
  return Array.from({ length: count }, (_, i) => ({ data: { n: from + i }, ...extra }));
}
