/**
 * Client adapters, one per system, behind the same two small interfaces, so every workload runs
 * the same code against every system. Used inside the worker processes (bench/worker.ts).
 *
 * - `dovetail`: raw WebSocket speaking protocol v1 (protocol/frames.ts): `publish` frames,
 *   acked once durable; `subscribe` with credit, granting more as messages are consumed.
 * - `redis-pubsub`: PUBLISH / SUBSCRIBE (not durable).
 * - `redis-streams`, `redis-streams-aof`: XADD, read with XREAD BLOCK (aof: appendonly yes,
 *   appendfsync everysec, the durable variant).
 * - `dovetail-async`, `dovetail-memory`: the same raw protocol on a topic whose durability level
 *   the harness set first (topic-setup.ts): `async` delivers before the commit and acks after it,
 *   `memory` stores nothing and acks on receipt.
 * - `dovetail-sdk`: what an application runs, @dovetail/sdk (sdk-clients.ts): `bus.publisher(topic)`
 *   with default options, one `send` per message (the SDK batches them), and
 *   `for await (const m of bus.subscribe(topic, { from: 0 }))`.
 * - `nats`: core NATS publish / subscribe (not durable).
 * - `nats-jetstream`: `js.publish`, awaiting each PubAck, to a file-storage stream the harness
 *   made for the topic (topic-setup.ts; the work-queue scenario makes its own); subscribers are
 *   ordered consumers from the stream's start (`consumer.consume()`). The work-queue consumers
 *   are in work-queue-clients.ts.
 *
 * "Batched" means the system's batch API: a publish frame with many messages (Dovetail), a
 * pipeline (Redis). Core NATS has no batch API: its client already coalesces publishes into
 * one buffer, so batched and unbatched are the same calls there (flush every batch). Neither
 * has JetStream nor the SDK's publisher: a batch is that many publishes in flight, then their
 * acks awaited.
 *
 * @example
 * const pub = await createPublisher("redis-pubsub", { url: "redis://127.0.0.1:6390", topic: "t" });
 * await pub.send(["...100 bytes..."], false);
 */
import net from "node:net";
import { Redis } from "ioredis";
import { DeliverPolicy, jetstream, type ConsumerMessages } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Durability } from "../../protocol/durability.ts";

export type SystemName =
  | "dovetail"
  | "dovetail-sdk"
  | "dovetail-async"
  | "dovetail-memory"
  | "redis-pubsub"
  | "redis-streams"
  | "redis-streams-aof"
  | "nats"
  | "nats-jetstream";

/**
 * The durability level (protocol/durability.ts) each raw-protocol Dovetail system sets on its
 * topics before the first publish; `dovetail` keeps the default, `sync`.
 */
export const DURABILITY_OF: Partial<Record<SystemName, Exclude<Durability, "sync">>> = {
  "dovetail-async": "async",
  "dovetail-memory": "memory",
};

/**
 * Dovetail clients of the work-queue scenario's latency case (bench/lib/work-queue-clients.ts):
 * a plain subscription and a group member, each through the SDK and through raw frames. They
 * publish like `dovetail`.
 */
export type DovetailVariant = "dovetail-subscribe" | "dovetail-group" | "dovetail-raw-subscribe" | "dovetail-raw-group";
export type ClientName = SystemName | DovetailVariant;

export interface Endpoint {
  /** Base URL of the system (http://…, redis://…, nats://…). */
  url: string;
  /** Topic / channel / stream / subject. */
  topic: string;
}

export interface Publisher {
  /**
   * Send `payloads`: one API call each (unbatched) or one batch call. Resolves when the system
   * has taken them (acked by Dovetail, replied by Redis, flushed to NATS).
   */
  send(payloads: string[], batched: boolean): Promise<void>;
  close(): Promise<void>;
}

export interface SubscriberOptions {
  /** Deliver at most this many messages per second to the application (slow consumer). */
  slowRatePerSec?: number;
  /** The subscription broke (server closed the socket, error frame, read failed): the run
   * cannot complete, so the worker reports at once instead of waiting for the timeout. */
  onFailure?: (reason: string) => void;
}

export interface Subscriber {
  close(): Promise<void>;
}

export type OnMessage = (payload: string) => void;

export async function createPublisher(system: ClientName, ep: Endpoint): Promise<Publisher> {
  switch (system) {
    case "dovetail":
    case "dovetail-async":
    case "dovetail-memory":
    case "dovetail-subscribe":
    case "dovetail-group":
    case "dovetail-raw-subscribe":
    case "dovetail-raw-group":
      return dovetailPublisher(ep);
    case "dovetail-sdk":
      return (await import("./sdk-clients.ts")).sdkPublisher(ep);
    case "redis-pubsub":
    case "redis-streams":
    case "redis-streams-aof":
      return redisPublisher(system, ep);
    case "nats":
      return natsPublisher(ep);
    case "nats-jetstream":
      return jetStreamPublisher(ep);
  }
}

export async function createSubscriber(system: SystemName, ep: Endpoint, onMessage: OnMessage, options: SubscriberOptions = {}): Promise<Subscriber> {
  switch (system) {
    case "dovetail":
    case "dovetail-async":
    case "dovetail-memory":
      return dovetailSubscriber(ep, onMessage, options);
    case "dovetail-sdk":
      return (await import("./sdk-clients.ts")).sdkSubscriber(ep, onMessage, options);
    case "redis-pubsub":
      return options.slowRatePerSec ? slowRawSubscriber(system, ep, onMessage, options.slowRatePerSec) : redisPubSubSubscriber(ep, onMessage);
    case "redis-streams":
    case "redis-streams-aof":
      return redisStreamSubscriber(ep, onMessage, options);
    case "nats":
      return options.slowRatePerSec ? slowRawSubscriber(system, ep, onMessage, options.slowRatePerSec) : natsSubscriber(ep, onMessage);
    case "nats-jetstream":
      return jetStreamSubscriber(ep, onMessage, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Dovetail (raw protocol v1)

/** Initial credit a benchmark subscriber grants; it tops up when half is used. */
const DOVETAIL_CREDIT = 100_000;
const CONNECT_TIMEOUT_MS = 15_000;

/**
 * Publishers use plain sockets (`?hibernate=0`) and subscribers hibernatable ones, as the SDK
 * does (docs/decisions/006-socket-modes.md).
 */
function wsUrl(ep: Endpoint, plain: boolean, acks = false): string {
  const query = [...(plain ? ["hibernate=0"] : []), ...(acks ? ["acks=batch"] : [])];
  return `${ep.url.replace(/^http/, "ws")}/v1/topics/${encodeURIComponent(ep.topic)}/ws${query.length ? `?${query.join("&")}` : ""}`;
}

export interface RawFrame {
  type: string;
  id?: number;
  count?: number;
  code?: string;
  message?: string;
  messages?: { offset: number; data?: unknown }[];
  /** `acks` frames (sockets opened with `?acks=batch`). */
  acks?: { id: number; offset: number; count: number }[];
  /** `jobs` frames (consumer groups). */
  jobs?: { offset: number; delivery: number; data?: unknown }[];
}

/**
 * Open a socket and wait for `welcome`; `onFrame` then gets every later frame. `role` picks the
 * socket mode (publishers plain, subscribers hibernatable); `hibernate` overrides it.
 */
export async function openDovetail(
  ep: Endpoint,
  role: "publisher" | "subscriber",
  onFrame: (f: RawFrame) => void,
  hibernate?: boolean,
  /** Open with `?acks=batch`: publishes answered together in `acks` frames (docs/protocol.md). */
  acks?: boolean,
): Promise<WebSocket> {
  const url = wsUrl(ep, hibernate === undefined ? role === "publisher" : !hibernate, acks);
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dovetail: no welcome from ${url} in ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    let welcomed = false;
    ws.addEventListener("message", (ev) => {
      const frame = JSON.parse(String(ev.data)) as RawFrame;
      if (!welcomed) {
        welcomed = true;
        clearTimeout(timer);
        if (frame.type !== "welcome") reject(new Error(`dovetail: expected welcome, got ${String(ev.data).slice(0, 200)}`));
        else resolve();
        return;
      }
      onFrame(frame);
    });
    ws.addEventListener("error", () => {
      clearTimeout(timer);
      reject(new Error(`dovetail: WebSocket error on ${url}`));
    });
    ws.addEventListener("close", (ev) => {
      clearTimeout(timer);
      if (!welcomed) reject(new Error(`dovetail: socket closed before welcome (code ${ev.code} ${ev.reason})`));
    });
  });
  return ws;
}

async function dovetailPublisher(ep: Endpoint): Promise<Publisher> {
  const pending = new Map<number, { n: number; resolve: () => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const answer = (f: { id: number; count?: number }, error?: RawFrame) => {
    const p = pending.get(f.id);
    if (!p) return;
    pending.delete(f.id);
    if (error) p.reject(new Error(`dovetail: publish ${f.id} failed: ${error.code} ${error.message}`));
    else if (f.count !== p.n) p.reject(new Error(`dovetail: publish ${f.id} acked ${f.count} of ${p.n} messages`));
    else p.resolve();
  };
  // `acks=batch`: a raw client written from docs/protocol.md opts in to one answer frame per commit.
  const ws = await openDovetail(
    ep,
    "publisher",
    (f) => {
      if (f.type === "acks" && f.acks) for (const a of f.acks) answer(a);
      else if ((f.type === "ack" || f.type === "error") && f.id !== undefined) answer({ id: f.id, count: f.count }, f.type === "error" ? f : undefined);
    },
    undefined,
    true,
  );
  ws.addEventListener("close", (ev) => {
    for (const p of pending.values()) p.reject(new Error(`dovetail: socket closed (code ${ev.code} ${ev.reason}) with ${pending.size} publishes in flight`));
    pending.clear();
  });
  const sendFrame = (payloads: string[]) =>
    new Promise<void>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { n: payloads.length, resolve, reject });
      // Payloads are plain ASCII, so JSON.stringify is only needed for the quotes.
      ws.send(`{"type":"publish","id":${id},"messages":[${payloads.map((p) => `{"data":"${p}"}`).join(",")}]}`);
    });
  return {
    async send(payloads, batched) {
      if (batched) return sendFrame(payloads);
      await Promise.all(payloads.map((p) => sendFrame([p])));
    },
    async close() {
      ws.close();
    },
  };
}

async function dovetailSubscriber(ep: Endpoint, onMessage: OnMessage, options: SubscriberOptions): Promise<Subscriber> {
  const slow = options.slowRatePerSec;
  let expectOffset = -1;
  let consumed = 0;
  let ws: WebSocket | null = null;
  let failure: string | null = null;
  const queue: string[] = [];
  const fail = (reason: string) => {
    if (failure) return;
    failure = reason;
    options.onFailure?.(`dovetail subscriber: ${reason}`);
  };
  ws = await openDovetail(ep, "subscriber", (f) => {
    if (f.type === "error") fail(`error frame ${f.code}: ${f.message}`);
    if (f.type !== "messages" || !f.messages) return;
    for (const m of f.messages) {
      // Offsets must be consecutive: a hole here is a delivery bug, counted by the payload check.
      if (expectOffset >= 0 && m.offset !== expectOffset) fail(`offset ${m.offset} after ${expectOffset - 1}`);
      expectOffset = m.offset + 1;
      if (slow) queue.push(m.data as string);
      else onMessage(m.data as string);
    }
    if (!slow) {
      consumed += f.messages.length;
      if (consumed >= DOVETAIL_CREDIT / 2) {
        ws!.send(`{"type":"credit","messages":${consumed}}`);
        consumed = 0;
      }
    }
  });
  let closing = false;
  ws.addEventListener("close", (ev) => {
    if (!closing) fail(`socket closed by the server (code ${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`);
  });
  let timer: ReturnType<typeof setInterval> | null = null;
  if (slow) {
    // Credit one message at a time at the slow rate: the topic holds the rest in its log.
    ws.send(`{"type":"subscribe","id":1,"from":0,"credit":1}`);
    timer = setInterval(() => {
      const m = queue.shift();
      if (m !== undefined) onMessage(m);
      ws!.send(`{"type":"credit","messages":1}`);
    }, 1000 / slow);
  } else {
    ws.send(`{"type":"subscribe","id":1,"from":0,"credit":${DOVETAIL_CREDIT}}`);
  }
  return {
    async close() {
      if (timer) clearInterval(timer);
      closing = true;
      ws!.close();
      if (failure) throw new Error(`dovetail subscriber: ${failure}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis

/** Messages per XREAD. */
const XREAD_COUNT = 1000;

export function redisClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false, enableOfflineQueue: true });
}

async function redisPublisher(system: SystemName, ep: Endpoint): Promise<Publisher> {
  const r = redisClient(ep.url);
  const streams = system !== "redis-pubsub";
  const one = (p: string) => (streams ? r.xadd(ep.topic, "*", "d", p) : r.publish(ep.topic, p));
  return {
    async send(payloads, batched) {
      if (!batched) {
        await Promise.all(payloads.map(one));
        return;
      }
      const pipe = r.pipeline();
      for (const p of payloads) {
        if (streams) pipe.xadd(ep.topic, "*", "d", p);
        else pipe.publish(ep.topic, p);
      }
      const results = await pipe.exec();
      for (const [err] of results ?? []) if (err) throw err;
    },
    async close() {
      r.disconnect();
    },
  };
}

async function redisPubSubSubscriber(ep: Endpoint, onMessage: OnMessage): Promise<Subscriber> {
  const r = redisClient(ep.url);
  r.on("message", (_channel: string, message: string) => onMessage(message));
  await r.subscribe(ep.topic);
  return {
    async close() {
      r.disconnect();
    },
  };
}

async function redisStreamSubscriber(ep: Endpoint, onMessage: OnMessage, options: SubscriberOptions): Promise<Subscriber> {
  const r = redisClient(ep.url);
  let last = "0-0";
  let stopped = false;
  const count = options.slowRatePerSec ? 1 : XREAD_COUNT;
  const pauseMs = options.slowRatePerSec ? 1000 / options.slowRatePerSec : 0;
  // Connected before the publisher starts (a PING behind a blocked XREAD would wait for it).
  await r.ping();
  const loop = (async () => {
    while (!stopped) {
      const res = (await r.xread("COUNT", count, "BLOCK", 1000, "STREAMS", ep.topic, last).catch((e: unknown) => {
        if (!stopped) options.onFailure?.(`XREAD failed: ${e instanceof Error ? e.message : String(e)}`);
        stopped = true;
        return null;
      })) as [string, [string, string[]][]][] | null;
      if (!res) continue;
      for (const [, entries] of res) {
        for (const [id, fields] of entries) {
          last = id;
          onMessage(fields[1]!);
        }
      }
      if (pauseMs) await new Promise((r2) => setTimeout(r2, pauseMs));
    }
  })();
  return {
    async close() {
      // The loop ends with the blocked XREAD, which the disconnect fails; no need to wait for it.
      stopped = true;
      r.disconnect();
      loop.catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// NATS

/** Publishes between flushes, so the client's buffer (and the server's view) stays bounded. */
const NATS_FLUSH_EVERY = 1000;

async function natsPublisher(ep: Endpoint): Promise<Publisher> {
  const nc: NatsConnection = await connect({ servers: ep.url.replace(/^nats:\/\//, "") });
  let sinceFlush = 0;
  return {
    async send(payloads) {
      for (const p of payloads) nc.publish(ep.topic, p);
      sinceFlush += payloads.length;
      if (sinceFlush >= NATS_FLUSH_EVERY) {
        sinceFlush = 0;
        await nc.flush();
      }
    },
    async close() {
      await nc.flush();
      await nc.close();
    },
  };
}

/**
 * JetStream: `js.publish` per message, each awaited for its PubAck (stored by the stream);
 * a batch is that many publishes in flight at once (the client pipelines them).
 */
async function jetStreamPublisher(ep: Endpoint): Promise<Publisher> {
  const nc = await connect({ servers: natsServer(ep.url) });
  const js = jetstream(nc);
  return {
    async send(payloads) {
      await Promise.all(payloads.map((p) => js.publish(ep.topic, p)));
    },
    async close() {
      await nc.close();
    },
  };
}

export function natsServer(url: string): string {
  return url.replace(/^nats:\/\//, "");
}

/** JetStream stream names take no dots: the subject is the topic, the stream its name with `_`. */
export function jetStreamName(topic: string): string {
  return topic.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** How long a slow JetStream consumer's `next()` waits for a message before asking again. */
const JETSTREAM_NEXT_EXPIRES_MS = 1000;

/**
 * JetStream subscriber: an ordered consumer (ephemeral, created by the client, which recreates it
 * at the right sequence after a gap) on the topic's stream from its first message, read with
 * `consume()` and the client's default pull sizes. A slow one takes one message at a time with
 * `next()` and waits between them, so the stream, not this process, holds the rest (as XREAD
 * COUNT 1 does on Redis Streams).
 */
async function jetStreamSubscriber(ep: Endpoint, onMessage: OnMessage, options: SubscriberOptions): Promise<Subscriber> {
  const nc = await connect({ servers: natsServer(ep.url) });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(jetStreamName(ep.topic), { deliver_policy: DeliverPolicy.All });
  let stopped = false;
  const fail = (e: unknown) => stopped || options.onFailure?.(`jetstream subscriber: ${e instanceof Error ? e.message : String(e)}`);
  let messages: ConsumerMessages | null = null;
  const slow = options.slowRatePerSec;
  if (slow) {
    void (async () => {
      while (!stopped) {
        const m = await consumer.next({ expires: JETSTREAM_NEXT_EXPIRES_MS });
        if (m) onMessage(m.string());
        await new Promise((r) => setTimeout(r, 1000 / slow));
      }
    })().catch(fail);
  } else {
    messages = await consumer.consume({ callback: (m) => onMessage(m.string()) });
    messages.closed().then((e) => e && fail(e), fail);
  }
  return {
    async close() {
      stopped = true;
      await messages?.close();
      await nc.close();
    },
  };
}

async function natsSubscriber(ep: Endpoint, onMessage: OnMessage): Promise<Subscriber> {
  const nc = await connect({ servers: ep.url.replace(/^nats:\/\//, "") });
  nc.subscribe(ep.topic, { callback: (_err, msg) => onMessage(msg.string()) });
  await nc.flush();
  return {
    async close() {
      await nc.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Slow consumers for push systems (Redis pub/sub, NATS): a raw TCP client that takes at most
// `rate` messages a second off its socket and stops reading (TCP backpressure) when it holds
// more than SLOW_BUFFER_BYTES, so the server, not this process, has to hold what is unread.

const SLOW_BUFFER_BYTES = 64 * 1024;

async function slowRawSubscriber(system: SystemName, ep: Endpoint, onMessage: OnMessage, rate: number): Promise<Subscriber> {
  const u = new URL(ep.url);
  const sock = net.connect({ host: u.hostname, port: Number(u.port) });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  sock.setEncoding("latin1");
  let buf = "";
  sock.on("data", (chunk: string) => {
    buf += chunk;
    if (buf.length > SLOW_BUFFER_BYTES) sock.pause();
  });
  sock.on("error", () => {});
  // Payloads start with "<pub>.<seq>." and are exactly 100 bytes: find them in the raw stream.
  const payloadRe = /(\d+\.\d+\.\d+\.x*)/;
  if (system === "nats") sock.write(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB ${ep.topic} 1\r\nPING\r\n`);
  else sock.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${Buffer.byteLength(ep.topic)}\r\n${ep.topic}\r\n`);
  // Wait for the server to confirm the subscription (PONG / subscribe reply).
  await new Promise<void>((resolve) => {
    const check = () => (/PONG|subscribe/.test(buf) ? resolve() : setTimeout(check, 10));
    check();
  });
  buf = "";
  const timer = setInterval(() => {
    const m = payloadRe.exec(buf);
    if (!m) {
      if (sock.isPaused()) sock.resume();
      return;
    }
    buf = buf.slice(m.index + m[0].length);
    if (system === "nats" && buf.startsWith("\r\nPING")) sock.write("PONG\r\n");
    onMessage(m[0].slice(0, 100));
    if (buf.length < SLOW_BUFFER_BYTES / 2 && sock.isPaused()) sock.resume();
  }, 1000 / rate);
  return {
    async close() {
      clearInterval(timer);
      sock.destroy();
    },
  };
}
