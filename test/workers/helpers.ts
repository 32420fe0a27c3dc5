/**
 * Test helpers: real WebSockets to real topic objects through the real gateway, inside workerd.
 */
import { exports } from "cloudflare:workers";
import { parseServerFrame, type ClientFrame, type DeliveredMessage, type ServerFrame } from "../../sdk/src/protocol.ts";

let counter = 0;
/** A topic name no other test uses. */
export function freshTopic(prefix = "t"): string {
  counter += 1;
  return `${prefix}.${Date.now().toString(36)}.${counter}.${Math.random().toString(36).slice(2, 8)}`;
}

export function gatewayFetch(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`http://bus.test${path}`, init));
}

/** A connected client socket that queues every frame it receives for the test to await. */
export class TestSocket {
  readonly ws: WebSocket;
  readonly frames: (ServerFrame | { type: "pong" })[] = [];
  readonly raw: string[] = [];
  closed: { code: number; reason: string } | null = null;
  #waiters: (() => void)[] = [];
  #nextId = 1;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (e) => {
      const text = typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer);
      this.raw.push(text);
      const parsed = parseServerFrame(text);
      if (!parsed.ok) throw parsed.error;
      this.frames.push(parsed.frame);
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
  async frame<T extends ServerFrame["type"] | "pong">(type: T, match: (f: Extract<ServerFrame | { type: "pong" }, { type: T }>) => boolean = () => true): Promise<Extract<ServerFrame | { type: "pong" }, { type: T }>> {
    let found: Extract<ServerFrame | { type: "pong" }, { type: T }> | undefined;
    await this.until(() => {
      found = this.frames.find((f): f is Extract<ServerFrame | { type: "pong" }, { type: T }> => f.type === type && match(f as never));
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
  async answer(id: number): Promise<ServerFrame> {
    let found: ServerFrame | undefined;
    await this.until(() => {
      found = this.frames.find((f): f is ServerFrame => f.type !== "messages" && f.type !== "pong" && f.type !== "welcome" && "id" in f && f.id === id);
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
export async function openSocket(topic: string, path = `/v1/topics/${encodeURIComponent(topic)}/ws`): Promise<TestSocket> {
  const res = await gatewayFetch(path, { headers: { Upgrade: "websocket" } });
  const ws = res.webSocket;
  if (!ws) throw new Error(`upgrade failed: ${res.status} ${await res.text()}`);
  ws.accept();
  return new TestSocket(ws);
}

/** Messages with `data: {n: i}` for i in [from, from+count). */
export function numbered(count: number, from = 0, extra: Record<string, unknown> = {}): { data: { n: number } }[] {
  return Array.from({ length: count }, (_, i) => ({ data: { n: from + i }, ...extra }));
}
