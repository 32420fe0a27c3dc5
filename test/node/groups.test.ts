/**
 * Consumer groups through the SDK against the real bus process (docs/groups.md): 10 members
 * sharing 100,000 messages, a member killed with SIGKILL while it holds jobs, the bus killed with
 * SIGKILL and restarted mid-run, ordered-per-key under 10 members, and the handler form.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Bus } from "../../sdk/src/index.ts";
import type { Job } from "../../sdk/src/consumer.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { freshTopic, sdkClients } from "../support/sdk-clients.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
let bus: BusProcess;
const clients = sdkClients(() => bus);
const client = clients.client;

async function publishNumbered(b: Bus, topic: string, count: number, key?: (i: number) => string): Promise<void> {
  const pub = b.publisher(topic, { maxBatch: 1000 });
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) sends.push(pub.send({ i }, key ? { key: key(i) } : undefined));
  await Promise.all(sends);
}

beforeAll(async () => {
  bus = await startBus({ auth: true });
}, 120_000);

afterAll(async () => {
  await clients.closeAll();
  await bus?.stop();
});

describe("consumer groups through the SDK", () => {
  it("10 members share 100,000 messages: each acked once, never in flight to two members at once", async () => {
    const topic = freshTopic("grp.share");
    const TOTAL = 100_000;
    const producer = client();
    await producer.createGroup(topic, "workers", { start: "earliest" });
    const holder = new Map<number, number>(); // offset → member index while in flight
    const ackedBy = new Map<number, number>();
    let overlap = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const members = Array.from({ length: 10 }, (_, m) =>
      client().consume(topic, "workers", { maxAckPending: 200, concurrency: 50 }, async (job: Job) => {
        if (holder.has(job.offset)) overlap++;
        holder.set(job.offset, m);
        await Promise.resolve();
        holder.delete(job.offset);
        if (ackedBy.has(job.offset)) overlap++;
        ackedBy.set(job.offset, m);
        if (ackedBy.size === TOTAL) done();
      }),
    );
    await publishNumbered(producer, topic, TOTAL);
    await finished;
    expect(overlap).toBe(0);
    expect(ackedBy.size).toBe(TOTAL);
    const perMember = new Array(10).fill(0);
    for (const m of ackedBy.values()) perMember[m]++;
    expect(perMember.every((n) => n > 0)).toBe(true);
    // The handler acks after it returns: wait for the group to settle everything.
    for (let i = 0; i < 200; i++) {
      const info = await producer.group(topic, "workers");
      if (info.ackFloor === TOTAL) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const info = await producer.group(topic, "workers");
    expect(info).toMatchObject({ ackFloor: TOTAL, lag: 0, pendingCount: 0 });
    expect(info.stats).toMatchObject({ delivered: TOTAL, acked: TOTAL, redelivered: 0 });
    for (const c of members) c.close();
  }, 180_000);

  it("gives the jobs of a member killed with SIGKILL to another member well within ackWaitMs", async () => {
    const topic = freshTopic("grp.kill");
    const ACK_WAIT_MS = 20_000;
    const b = client();
    await b.createGroup(topic, "g", { start: "earliest", ackWaitMs: ACK_WAIT_MS });
    await publishNumbered(b, topic, 20);
    const child = spawn(process.execPath, [path.join(ROOT, "test/support/holding-member.ts"), bus.url, bus.token!, topic, "g", "20"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const held = new Set<number>();
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line) held.add(Number(line));
        if (held.size === 20) resolve();
      });
      child.on("exit", () => reject(new Error("member exited early")));
    });
    const killedAt = Date.now();
    child.kill("SIGKILL");
    const taken: Job[] = [];
    for await (const job of b.consume(topic, "g")) {
      taken.push(job);
      await job.ack();
      if (taken.length === 20) break;
    }
    const after = Date.now() - killedAt;
    expect(taken.map((j) => j.offset).sort((x, y) => x - y)).toEqual([...held].sort((x, y) => x - y));
    expect(taken.every((j) => j.delivery === 2)).toBe(true);
    // Taken back when the socket closed, not at the ack wait.
    expect(after).toBeLessThan(ACK_WAIT_MS);
    console.log(`redelivered ${taken.length} jobs ${after} ms after the holder was killed (ackWaitMs ${ACK_WAIT_MS})`);
  }, 60_000);

  it("after the bus is killed with SIGKILL and restarted, redelivers every unacked message and no acked one", async () => {
    const topic = freshTopic("grp.crash");
    const TOTAL = 3000;
    const b = client();
    await b.createGroup(topic, "g", { start: "earliest", ackWaitMs: 60_000 });
    await publishNumbered(b, topic, TOTAL);
    const acked = new Set<number>(); // acks the bus confirmed (durable)
    const redeliveredAcked: number[] = [];
    // Room for every job this loop holds back until the crash (a third of them).
    const consumer = client().consume(topic, "g", { maxAckPending: TOTAL });
    let restarted = false;
    let restart: Promise<void> | null = null;
    for await (const job of consumer) {
      if (acked.has(job.offset)) redeliveredAcked.push(job.offset);
      // Every third job stays unacked until after the crash.
      if (!restarted && job.offset % 3 === 0) {
        if (acked.size > 500 && !restart) {
          restart = bus.restart().then(() => {
            restarted = true;
          });
        }
        continue;
      }
      try {
        await job.ack();
        acked.add(job.offset);
      } catch {
        // Unconfirmed (the bus went down, or the job was taken back): it must come again.
      }
      if (acked.size === TOTAL) break;
    }
    await restart;
    expect(restarted).toBe(true);
    expect(redeliveredAcked).toEqual([]);
    expect(acked.size).toBe(TOTAL);
    const info = await b.group(topic, "g");
    expect(info).toMatchObject({ ackFloor: TOTAL, pendingCount: 0 });
  }, 180_000);

  it("a consumer that stops gives back what it prefetched without using up a delivery", async () => {
    const topic = freshTopic("grp.stop");
    const b = client();
    await b.createGroup(topic, "g", { start: "earliest", maxDeliver: 1 });
    await publishNumbered(b, topic, 20);
    const first = client().consume(topic, "g", { maxAckPending: 10 });
    let taken = 0;
    for await (const job of first) {
      await job.ack();
      if (++taken === 2) break; // 8 more were sent ahead and never taken
    }
    const rest: Job[] = [];
    for await (const job of b.consume(topic, "g", { maxAckPending: 100 })) {
      rest.push(job);
      await job.ack();
      if (rest.length === 18) break;
    }
    // maxDeliver 1: a counted delivery would have made the prefetched ones dead letters.
    expect(rest.every((j) => j.delivery === 1)).toBe(true);
    expect(new Set(rest.map((j) => j.offset)).size).toBe(18);
    const info = await b.group(topic, "g");
    expect(info.stats).toMatchObject({ acked: 20, deadLettered: 0, redelivered: 0 });
  }, 60_000);

  it("keeps per-key order under 10 members while keys run in parallel", async () => {
    const topic = freshTopic("grp.keys");
    const b = client();
    await b.createGroup(topic, "g", { start: "earliest", orderedByKey: true });
    const KEYS = 20;
    const TOTAL = 2000;
    await publishNumbered(b, topic, TOTAL, (i) => `k${i % KEYS}`);
    const order = new Map<string, number[]>();
    const inFlight = new Map<string, number>();
    let violations = 0;
    let maxParallel = 0;
    let count = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const members = Array.from({ length: 10 }, () =>
      client().consume(topic, "g", { maxAckPending: 10, concurrency: 10 }, async (job: Job) => {
        const key = job.key!;
        if (inFlight.has(key)) violations++;
        inFlight.set(key, job.offset);
        maxParallel = Math.max(maxParallel, inFlight.size);
        await new Promise((r) => setTimeout(r, 1));
        inFlight.delete(key);
        const list = order.get(key) ?? [];
        list.push(job.offset);
        order.set(key, list);
        if (++count === TOTAL) done();
      }),
    );
    await finished;
    expect(violations).toBe(0);
    for (const list of order.values()) expect(list).toEqual([...list].sort((x, y) => x - y));
    expect(maxParallel).toBeGreaterThan(1);
    for (const c of members) c.close();
  }, 120_000);
});
