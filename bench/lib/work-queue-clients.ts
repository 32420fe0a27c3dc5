/**
 * Work-queue clients (issue 12's speed section): one worker of a shared queue per connection,
 * behind one small interface, so the work-queue scenario (work-queue.ts) runs the same code
 * against every system. Used inside the worker processes (bench/worker.ts, role `queue`).
 *
 * - `dovetail`: the SDK, `bus.consume(topic, group, { maxAckPending, create })`, `job.ack()` on
 *   every job (the SDK puts the acks of one tick in one `settle` frame; each resolves once the
 *   topic has stored it). Consumer sockets are hibernatable, the SDK's default.
 * - `dovetail-plain`: the same with `hibernate: false` (a plain socket).
 * - `dovetail-raw`: raw protocol v1 frames on a hibernatable socket: `consume`, then one `settle`
 *   frame acking every job of each `jobs` frame.
 * - `redis-streams`, `redis-streams-aof`: `XREADGROUP ... COUNT prefetch BLOCK 100 STREAMS key >`,
 *   then one `XACK` per entry, pipelined per batch; every 100 ms `XAUTOCLAIM` with min-idle =
 *   the ack wait takes over entries a dead worker left (Redis has no automatic redelivery).
 * - `nats-jetstream`: a durable pull consumer on a work-queue stream shared by every worker,
 *   `consumer.consume({ max_messages: prefetch })`, `m.ack()` (fire and forget, as the client
 *   offers it; the run checks on the server that nothing is left pending).
 *
 * Also here: creating the group / stream / consumer before a run and reading its state after,
 * and the latency case's Dovetail subscribers (a plain subscription and a group member, through
 * the SDK and through raw frames).
 *
 * @example
 * await createQueue("redis-streams", ep, { groupMaxAckPending: 2000 });
 * const w = await openQueueWorker("redis-streams", ep, { name: "w1", prefetch: 100, hold: false, onJob, onAcked, onFailure });
 * await w.start();
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect as natsConnect, nanos, type NatsConnection } from "@nats-io/transport-node";
import type { Bus } from "../../sdk/src/index.ts";
import {
  jetStreamName,
  natsServer,
  openDovetail,
  redisClient,
  type DovetailVariant,
  type OnMessage,
  type Subscriber,
  type SubscriberOptions,
} from "./systems.ts";

export type QueueClient = "dovetail" | "dovetail-plain" | "dovetail-raw" | "redis-streams" | "redis-streams-aof" | "nats-jetstream";

export interface QueueEndpoint {
  /** Base URL of the system. */
  url: string;
  /** Topic / stream key / subject. */
  topic: string;
  /** Group / consumer group / durable consumer name. */
  group: string;
  /** A job not acked within this goes to another worker (Dovetail, JetStream) or may be claimed (Redis). */
  ackWaitMs: number;
}

export interface QueueWorkerOptions {
  /** Consumer name (Redis needs one per worker). */
  name: string;
  /** Jobs a worker holds unacked at most: Dovetail maxAckPending, XREADGROUP COUNT, JetStream max_messages. */
  prefetch: number;
  /** Take jobs and never ack them (the worker that gets killed). */
  hold: boolean;
  /** A job arrived: its payload and delivery count (0 when the system does not say). */
  onJob(payload: string, delivery: number): void;
  /** The system confirmed the ack of this job (JetStream: the ack was sent). */
  onAcked(payload: string): void;
  /** The worker cannot go on (socket closed by the server, refused, a failed ack). */
  onFailure(reason: string): void;
}

export interface QueueWorker {
  /** Start taking jobs; resolves once the system counts this worker as a member/consumer. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** How often a Redis worker runs XAUTOCLAIM, as a user would poll for a dead worker's entries. */
export const REDIS_CLAIM_EVERY_MS = 100;
/** How long a worker's XREADGROUP blocks when the stream is empty (then it claims again). */
const REDIS_BLOCK_MS = 100;
const START_TIMEOUT_MS = 15_000;

/** The SDK, loaded only by the clients that use it (the other systems' workers do not depend on it). */
async function dovetailConnect(url: string): Promise<Bus> {
  const sdk = await import("../../sdk/src/index.ts");
  return sdk.connect(url);
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The Dovetail group settings every client of a run passes (a `create` with other settings would be a conflict). */
function dovetailSettings(ep: QueueEndpoint, groupMaxAckPending: number) {
  return { start: "earliest" as const, ackWaitMs: ep.ackWaitMs, maxAckPending: groupMaxAckPending };
}

/**
 * Make the queue before anything is published: the Dovetail group (start earliest), the Redis
 * group (`XGROUP CREATE key group 0 MKSTREAM`), the JetStream work-queue stream (file storage)
 * and its durable pull consumer (explicit acks, `ack_wait`).
 */
export async function createQueue(client: QueueClient, ep: QueueEndpoint, options: { groupMaxAckPending: number }): Promise<void> {
  switch (client) {
    case "dovetail":
    case "dovetail-plain":
    case "dovetail-raw": {
      const res = await fetch(`${ep.url}/v1/topics/${encodeURIComponent(ep.topic)}/groups/${encodeURIComponent(ep.group)}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(dovetailSettings(ep, options.groupMaxAckPending)),
      });
      if (!res.ok) throw new Error(`dovetail: creating group ${ep.group}: ${res.status} ${await res.text()}`);
      return;
    }
    case "redis-streams":
    case "redis-streams-aof": {
      const r = redisClient(ep.url);
      try {
        await r.xgroup("CREATE", ep.topic, ep.group, "0", "MKSTREAM");
      } finally {
        r.disconnect();
      }
      return;
    }
    case "nats-jetstream": {
      const nc = await natsConnect({ servers: natsServer(ep.url) });
      try {
        const jsm = await jetstreamManager(nc);
        const stream = jetStreamName(ep.topic);
        await jsm.streams.add({ name: stream, subjects: [ep.topic], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
        await jsm.consumers.add(stream, {
          durable_name: ep.group,
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(ep.ackWaitMs),
          deliver_policy: DeliverPolicy.All,
          max_ack_pending: options.groupMaxAckPending,
        });
      } finally {
        await nc.close();
      }
      return;
    }
  }
}

/** What the server says about a queue after a run. */
export interface QueueState {
  /** Settled for good: below Dovetail's ack floor, read and acked in Redis, acked in JetStream. */
  settled: number;
  /** Delivered and not acked. */
  pending: number;
  /** The server's own redelivery count, when it keeps one. */
  redelivered?: number;
  /** The raw figures, for the report. */
  detail: string;
}

export async function queueState(client: QueueClient, ep: QueueEndpoint): Promise<QueueState> {
  switch (client) {
    case "dovetail":
    case "dovetail-plain":
    case "dovetail-raw": {
      const res = await fetch(`${ep.url}/v1/topics/${encodeURIComponent(ep.topic)}/groups/${encodeURIComponent(ep.group)}`);
      if (!res.ok) throw new Error(`dovetail: group info: ${res.status} ${await res.text()}`);
      const info = (await res.json()) as { ackFloor: number; head: number; pendingCount: number; stats: { acked: number; redelivered: number } };
      return {
        settled: info.ackFloor,
        pending: info.pendingCount,
        redelivered: info.stats.redelivered,
        detail: `ackFloor ${info.ackFloor}, head ${info.head}, pending ${info.pendingCount}, acked ${info.stats.acked}, redelivered ${info.stats.redelivered}`,
      };
    }
    case "redis-streams":
    case "redis-streams-aof": {
      const r = redisClient(ep.url);
      try {
        const [pending] = (await r.xpending(ep.topic, ep.group)) as [number, ...unknown[]];
        const groups = (await r.xinfo("GROUPS", ep.topic)) as unknown[][];
        const g = groups.map((flat) => Object.fromEntries(pairs(flat))).find((x) => x.name === ep.group) ?? {};
        const read = Number(g["entries-read"] ?? 0);
        return { settled: read - Number(pending), pending: Number(pending), detail: `entries-read ${read}, pending ${pending}, lag ${String(g.lag)}` };
      } finally {
        r.disconnect();
      }
    }
    case "nats-jetstream": {
      const nc = await natsConnect({ servers: natsServer(ep.url) });
      try {
        const jsm: JetStreamManager = await jetstreamManager(nc);
        const stream = jetStreamName(ep.topic);
        const ci = await jsm.consumers.info(stream, ep.group);
        const si = await jsm.streams.info(stream);
        return {
          settled: ci.ack_floor.stream_seq,
          pending: ci.num_ack_pending,
          redelivered: ci.num_redelivered,
          detail: `ack floor ${ci.ack_floor.stream_seq}, ack pending ${ci.num_ack_pending}, not delivered ${ci.num_pending}, redelivered ${ci.num_redelivered}, left in the work-queue stream ${si.state.messages}`,
        };
      } finally {
        await nc.close();
      }
    }
  }
}

function pairs(flat: unknown[]): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}

export async function openQueueWorker(client: QueueClient, ep: QueueEndpoint, options: QueueWorkerOptions, groupMaxAckPending: number): Promise<QueueWorker> {
  switch (client) {
    case "dovetail":
    case "dovetail-plain":
      return sdkWorker(ep, options, client === "dovetail", groupMaxAckPending);
    case "dovetail-raw":
      return rawWorker(ep, options, true, groupMaxAckPending);
    case "redis-streams":
    case "redis-streams-aof":
      return redisWorker(ep, options);
    case "nats-jetstream":
      return jetStreamWorker(ep, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Dovetail

async function sdkWorker(ep: QueueEndpoint, o: QueueWorkerOptions, hibernate: boolean, groupMaxAckPending: number): Promise<QueueWorker> {
  const bus = await dovetailConnect(ep.url);
  let consumer: ReturnType<Bus["consume"]> | null = null;
  let closing = false;
  return {
    async start() {
      const c = bus.consume(ep.topic, ep.group, { maxAckPending: o.prefetch, hibernate, create: dovetailSettings(ep, groupMaxAckPending) });
      consumer = c;
      void (async () => {
        for await (const job of c) {
          const payload = job.data as string;
          o.onJob(payload, job.delivery);
          if (o.hold) continue;
          job.ack().then(
            () => o.onAcked(payload),
            (e: unknown) => closing || o.onFailure(`ack of offset ${job.offset} failed: ${errorText(e)}`),
          );
        }
      })().catch((e: unknown) => closing || o.onFailure(`consumer ended: ${errorText(e)}`));
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (c.member === null) {
        if (Date.now() > deadline) throw new Error(`dovetail: not a member of ${ep.group} after ${START_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async close() {
      closing = true;
      consumer?.close();
      await bus.close();
    },
  };
}

async function rawWorker(ep: QueueEndpoint, o: QueueWorkerOptions, hibernate: boolean, groupMaxAckPending: number): Promise<QueueWorker> {
  const settling = new Map<number, string[]>();
  let nextId = 2;
  let consuming: (() => void) | null = null;
  let closing = false;
  const fail = (reason: string) => closing || o.onFailure(`dovetail raw: ${reason}`);
  const ws = await openDovetail(
    ep,
    "subscriber",
    (f) => {
      if (f.type === "consuming") consuming?.();
      else if (f.type === "error") fail(`error frame ${f.code}: ${f.message}`);
      else if (f.type === "settled") {
        for (const p of settling.get(f.id!) ?? []) o.onAcked(p);
        settling.delete(f.id!);
      } else if (f.type === "jobs" && f.jobs) {
        const payloads: string[] = [];
        for (const j of f.jobs) {
          payloads.push(j.data as string);
          o.onJob(j.data as string, j.delivery);
        }
        if (o.hold) return;
        const id = nextId++;
        settling.set(id, payloads);
        ws.send(JSON.stringify({ type: "settle", id, op: "ack", jobs: f.jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })) }));
      }
    },
    hibernate,
  );
  ws.addEventListener("close", (ev) => fail(`socket closed by the server (code ${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`));
  return {
    async start() {
      const ok = new Promise<void>((resolve) => (consuming = resolve));
      ws.send(JSON.stringify({ type: "consume", id: 1, group: ep.group, maxAckPending: o.prefetch, create: dovetailSettings(ep, groupMaxAckPending) }));
      await withTimeout(ok, START_TIMEOUT_MS, "dovetail raw: no consuming frame");
    },
    async close() {
      closing = true;
      ws.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis Streams

type StreamEntries = [string, string[]][];

async function redisWorker(ep: QueueEndpoint, o: QueueWorkerOptions): Promise<QueueWorker> {
  const r = redisClient(ep.url);
  await r.ping();
  let stopped = false;
  let loop: Promise<void> | null = null;
  const handle = async (entries: StreamEntries | null | undefined, delivery: number) => {
    const live = (entries ?? []).filter((e) => e?.[1]); // XAUTOCLAIM may list deleted entries as null
    if (live.length === 0) return;
    for (const [, fields] of live) o.onJob(fields[1]!, delivery);
    if (o.hold) return;
    const pipe = r.pipeline();
    for (const [id] of live) pipe.xack(ep.topic, ep.group, id);
    const results = (await pipe.exec()) ?? [];
    for (const [i, [err]] of results.entries()) {
      if (err) throw err;
      o.onAcked(live[i]![1][1]!);
    }
  };
  return {
    async start() {
      loop = (async () => {
        let cursor = "0-0";
        let lastClaim = Date.now();
        while (!stopped) {
          if (!o.hold && Date.now() - lastClaim >= REDIS_CLAIM_EVERY_MS) {
            lastClaim = Date.now();
            const [next, claimed] = (await r.xautoclaim(ep.topic, ep.group, o.name, ep.ackWaitMs, cursor, "COUNT", o.prefetch)) as [string, StreamEntries];
            cursor = next;
            await handle(claimed, 2);
          }
          const res = (await r.xreadgroup("GROUP", ep.group, o.name, "COUNT", o.prefetch, "BLOCK", REDIS_BLOCK_MS, "STREAMS", ep.topic, ">")) as
            | [string, StreamEntries][]
            | null;
          for (const [, entries] of res ?? []) await handle(entries, 1);
          // A holder reads its batch once and keeps it.
          if (o.hold && res) break;
        }
      })().catch((e: unknown) => {
        if (!stopped) o.onFailure(`redis worker: ${errorText(e)}`);
      });
    },
    async close() {
      stopped = true;
      r.disconnect();
      loop?.catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream

async function jetStreamWorker(ep: QueueEndpoint, o: QueueWorkerOptions): Promise<QueueWorker> {
  const nc: NatsConnection = await natsConnect({ servers: natsServer(ep.url) });
  const js = jetstream(nc);
  const consumer = await js.consumers.get(jetStreamName(ep.topic), ep.group);
  let messages: ConsumerMessages | null = null;
  let stopped = false;
  return {
    async start() {
      const msgs = await consumer.consume({ max_messages: o.prefetch });
      messages = msgs;
      void (async () => {
        for await (const m of msgs) {
          const payload = m.string();
          o.onJob(payload, m.info.deliveryCount);
          if (o.hold) continue;
          m.ack();
          o.onAcked(payload);
        }
      })().catch((e: unknown) => stopped || o.onFailure(`jetstream consumer: ${errorText(e)}`));
    },
    async close() {
      stopped = true;
      // Every ack is on the server before the worker reports.
      await nc.flush().catch(() => {});
      messages?.stop();
      await nc.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The latency case's Dovetail subscribers

const LATENCY_GROUP = "latency";
const LATENCY_PREFETCH = 100;
const LATENCY_ACK_WAIT_MS = 30_000;

/**
 * A subscriber for the latency case: `dovetail-subscribe` is `bus.subscribe(topic, { from: 0 })`;
 * `dovetail-group` a group member (SDK, acking each job); `dovetail-raw-group` the same in raw
 * frames. (`dovetail-raw-subscribe` is the harness's usual raw subscriber, systems.ts.)
 */
export async function createVariantSubscriber(
  variant: Exclude<DovetailVariant, "dovetail-raw-subscribe">,
  ep: { url: string; topic: string },
  onMessage: OnMessage,
  options: SubscriberOptions,
): Promise<Subscriber> {
  const fail = (reason: string) => options.onFailure?.(`${variant}: ${reason}`);
  if (variant === "dovetail-subscribe") return (await import("./sdk-clients.ts")).sdkSubscriber(ep, onMessage, options);
  const qep = { ...ep, group: LATENCY_GROUP, ackWaitMs: LATENCY_ACK_WAIT_MS };
  const worker = await openQueueWorker(
    variant === "dovetail-group" ? "dovetail" : "dovetail-raw",
    qep,
    { name: "latency", prefetch: LATENCY_PREFETCH, hold: false, onJob: (payload) => onMessage(payload), onAcked: () => {}, onFailure: fail },
    10_000,
  );
  await worker.start();
  return worker;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
