/**
 * The edge bridge against the real bus (`startBus()`: wrangler dev + workerd, auth off) and real
 * rings in /dev/shm. The kill -9 tests run the bridge as the `dovetail-local bridge` command in a
 * child process, so the CLI is tested too. Timers are watchdogs only.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, type Bus } from "@dovetail/sdk";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../../test/support/bus-process.ts";
import {
  bridge,
  BridgeError,
  decodeEdgeRecord,
  oldestBoundary,
  Ring,
  RING_HEADER,
  RING_LOST_HEADER,
  RING_OFFSET_HEADER,
  unlinkBridgeFiles,
  type BridgeEvent,
} from "../src/index.ts";
import { cleanupRings, freshName, killQuietly, nodeBin, spawnChild, type Child } from "./helpers.ts";

const CLI = fileURLToPath(new URL("../bin/dovetail-local.ts", import.meta.url));
const EXAMPLE = fileURLToPath(new URL("../examples/bridge-basic.ts", import.meta.url));
const WATCHDOG_MS = 90_000;
const TOTAL = 5000;
/** The bridge is killed once this many records went through, while the rest still flows. */
const KILL_AT = 1000;
/** Records are produced in chunks with a pause, so the stream is still going at the kill. */
const CHUNK = 100;
const CHUNK_PAUSE_MS = 5;

let bus: BusProcess;
let sdk: Bus;
const bridged: { ring: string; topic: string }[] = [];
const children: Child[] = [];

beforeAll(async () => {
  bus = await startBus();
  sdk = connect(bus.url);
});

afterAll(async () => {
  await sdk?.close({ force: true });
  await bus?.stop();
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    killQuietly(child);
    await child.exited;
  }
  for (const { ring, topic } of bridged.splice(0)) unlinkBridgeFiles(ring, [topic]);
  cleanupRings();
});

let counter = 0;
function freshTopic(label: string): string {
  counter += 1;
  return `bridge.${label}.${process.pid}.${Date.now().toString(36)}.${counter}`;
}

function fresh(label: string): { ring: string; topic: string } {
  const pair = { ring: freshName(label), topic: freshTopic(label) };
  bridged.push(pair);
  return pair;
}

/** Poll `check` until it is true; the deadline is a watchdog against hangs, not a timing bound. */
async function until(what: string, check: () => boolean | Promise<boolean>, watchdogMs = WATCHDOG_MS): Promise<void> {
  const deadline = Date.now() + watchdogMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`watchdog: ${what} did not happen in ${watchdogMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function startCli(args: string[]): Child {
  const child = spawnChild(args, CLI);
  children.push(child);
  return child;
}

async function kill9(child: Child): Promise<void> {
  child.proc.kill("SIGKILL");
  expect(await child.exited).toBe(null); // died by the signal, not by exiting
}

async function stop(child: Child): Promise<void> {
  child.proc.kill("SIGTERM");
  expect(await child.exited).toBe(0);
}

interface WireMessage {
  offset: number;
  data?: unknown;
  bytes?: string;
  headers?: Record<string, string>;
}

/** Every message of `topic`, read back over plain HTTP (not the SDK). */
async function readAllOverHttp(topic: string): Promise<WireMessage[]> {
  const out: WireMessage[] = [];
  for (let from = 0, pages = 0; pages < 1000; pages++) {
    const res = await fetch(`${bus.url}/v1/topics/${encodeURIComponent(topic)}/messages?from=${from}&limit=1000`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { messages: WireMessage[]; next: number; head: number };
    out.push(...body.messages);
    if (body.next >= body.head) return out;
    from = body.next;
  }
  throw new Error("watchdog: more than 1000 pages");
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe("edge-to-local", () => {
  /** Even messages are bytes, odd ones JSON: both record types travel. */
  const payload = (i: number): unknown => (i % 2 === 0 ? new TextEncoder().encode(`b-${i}`) : { i });

  async function publishEdge(topic: string): Promise<void> {
    const pub = sdk.publisher(topic, { lingerMs: 2, maxBatch: 250 });
    for (let i = 0; i < TOTAL; i++) {
      void pub.send(payload(i));
      if ((i + 1) % CHUNK === 0) await new Promise((resolve) => setTimeout(resolve, CHUNK_PAUSE_MS));
    }
    await pub.flush();
  }

  it("mirrors 5,000 edge messages into the ring in order with their edge offsets, exactly once across a kill -9", async () => {
    const { ring, topic } = fresh("e2l");
    Ring.create(ring, { capacity: 1 << 20 }).close(); // the bridge adopts it
    const consumer = Ring.open(ring);
    const seen: { edgeOffset: number; body: string; json: boolean }[] = [];
    const drain = (): void => {
      for (const rec of consumer.pollBatch(1024)) {
        const e = decodeEdgeRecord(rec);
        expect(e, `record at ${rec.offset} of type ${rec.type} is a bridged record`).not.toBeNull();
        seen.push({ edgeOffset: e!.edgeOffset, body: text(e!.payload), json: e!.json });
      }
    };
    try {
      const args = ["bridge", ring, topic, "--direction", "edge-to-local", "--url", bus.url, "--max-batch", "50"];
      const first = startCli(args);
      expect(await first.waitFor((m) => m.event === "resume", WATCHDOG_MS)).toMatchObject({ via: "fresh", edgeFrom: "earliest" });
      const published = publishEdge(topic); // flows while the bridge is killed and restarted
      await until(`${KILL_AT} bridged records`, () => {
        drain();
        return seen.length >= KILL_AT;
      });
      await kill9(first);
      drain();
      await published;
      const second = startCli(args);
      const resume = await second.waitFor((m) => m.event === "resume", WATCHDOG_MS);
      expect(resume).toMatchObject({ via: "ring" });
      // It found the last record the killed bridge made visible (the head passes only whole records).
      expect(resume.edgeFrom).toBe((resume.lastEdgeOffset as number) + 1);
      expect(resume.lastEdgeOffset as number).toBeLessThan(TOTAL - 1); // it was killed mid-stream
      await until(`${TOTAL} records in the ring`, () => {
        drain();
        return seen.length >= TOTAL;
      });
      await stop(second);
      drain(); // anything a duplicate would have added
      expect(seen.map((s) => s.edgeOffset)).toEqual(range(TOTAL));
      for (const s of seen) {
        if (s.edgeOffset % 2 === 0) expect(s).toMatchObject({ json: false, body: `b-${s.edgeOffset}` });
        else expect(s).toMatchObject({ json: true, body: JSON.stringify({ i: s.edgeOffset }) });
      }
      expect(consumer.stats.gaps).toBe(0);
    } finally {
      consumer.close();
    }
    // The ring itself, read from its start by a new consumer, holds each message once.
    const whole = Ring.open(ring, { from: 0 });
    try {
      const offsets: number[] = [];
      for (let batch = whole.pollBatch(1024); batch.length > 0; batch = whole.pollBatch(1024)) {
        for (const rec of batch) offsets.push(decodeEdgeRecord(rec)!.edgeOffset);
      }
      expect(offsets).toEqual(range(TOTAL));
    } finally {
      whole.close();
    }
  });

  it("refuses to mirror a second topic into a ring whose checkpoint names another one", async () => {
    const { ring, topic } = fresh("e2lck");
    await sdk.publish(topic, { n: 1 });
    const b = bridge({ ring, topic, direction: "edge-to-local", bus: sdk, ringOptions: { capacity: 1 << 16 } });
    await b.ready;
    await until("the message in the ring", () => b.stats.records === 1);
    await b.close();
    const other = bridge({ ring, topic: freshTopic("other"), direction: "edge-to-local", bus: sdk });
    await expect(other.done).rejects.toMatchObject({ name: "BridgeError", code: "BRIDGE_RESUME" });
  });
});

describe("local-to-edge", () => {
  it("forwards 5,000 ring records to the edge topic exactly once in ring order across a kill -9", async () => {
    const { ring, topic } = fresh("l2e");
    // Big enough to keep every record while no bridge runs (nothing is overwritten here).
    const w = Ring.create(ring, { capacity: 1 << 22 });
    const offsets: number[] = [];
    const produce = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        const offset = w.publish(new TextEncoder().encode(`r-${i}`));
        expect(offset).toBeGreaterThanOrEqual(0);
        offsets.push(offset);
      }
    };
    const produceAll = async (): Promise<void> => {
      for (let i = 0; i < TOTAL; i += CHUNK) {
        produce(i, i + CHUNK);
        await new Promise((resolve) => setTimeout(resolve, CHUNK_PAUSE_MS));
      }
    };
    try {
      const args = ["bridge", ring, topic, "--direction", "local-to-edge", "--url", bus.url, "--max-batch", "50"];
      const first = startCli(args);
      expect(await first.waitFor((m) => m.event === "resume", WATCHDOG_MS)).toMatchObject({ via: "fresh", ringFrom: 0 });
      const produced = produceAll(); // flows while the bridge is killed and restarted
      await until(`${KILL_AT} messages on the edge`, async () => (await sdk.info(topic)).head >= KILL_AT);
      await kill9(first); // with frames in flight
      await produced;
      const second = startCli(args);
      const resume = await second.waitFor((m) => m.event === "resume", WATCHDOG_MS);
      expect(resume).toMatchObject({ via: "edge" });
      expect(offsets).toContain(resume.lastRingOffset);
      expect(resume.lastRingOffset as number).toBeLessThan(offsets[TOTAL - 1]!); // it was killed mid-stream
      await until(`${TOTAL} messages on the edge`, async () => (await sdk.info(topic)).head >= TOTAL);
      await stop(second);

      const messages = await readAllOverHttp(topic);
      expect(messages.map((m) => Number(m.headers?.[RING_OFFSET_HEADER]))).toEqual(offsets);
      expect(messages.map((m) => text(Buffer.from(m.bytes!, "base64")))).toEqual(range(TOTAL).map((i) => `r-${i}`));
      expect(messages.every((m) => m.headers?.[RING_HEADER] === ring && m.headers?.[RING_LOST_HEADER] === undefined)).toBe(true);
    } finally {
      w.close();
    }
  });

  it("reports records overwritten while no bridge ran as a gap and marks the next message", async () => {
    const { ring, topic } = fresh("l2egap");
    const w = Ring.create(ring, { capacity: 4096 });
    const events: BridgeEvent[] = [];
    try {
      const record = (i: number): Uint8Array => new TextEncoder().encode(`g-${i}`.padEnd(40, "."));
      w.publishBatch([0, 1, 2].map(record));
      const first = bridge({ ring, topic, direction: "local-to-edge", bus: sdk, format: "bytes" });
      await first.ready;
      await until("3 records confirmed", () => first.stats.records === 3);
      await first.close();
      // Two rings' worth of records while no bridge reads: the oldest are overwritten.
      for (let i = 3; i < 200; i++) expect(w.publish(record(i))).toBeGreaterThanOrEqual(0);
      const second = bridge({ ring, topic, direction: "local-to-edge", bus: sdk, onEvent: (e) => events.push(e) });
      const resume = await second.ready;
      expect(resume).toMatchObject({ via: "edge", ringFrom: oldestBoundary(w.position, 4096) });
      expect(events).toContainEqual(expect.objectContaining({ type: "gap", reason: "overwritten" }));
      const head = (await sdk.info(topic)).head;
      await until("the surviving records on the edge", async () => (await sdk.info(topic)).head > head);
      await second.close();
      const messages = await readAllOverHttp(topic);
      expect(messages.slice(0, 3).map((m) => text(Buffer.from(m.bytes!, "base64")).slice(0, 3))).toEqual(["g-0", "g-1", "g-2"]);
      expect(messages[3]!.headers?.[RING_LOST_HEADER]).toBeDefined();
      expect(Number(messages[3]!.headers?.[RING_OFFSET_HEADER])).toBe(resume.ringFrom);
      const ringOffsets = messages.map((m) => Number(m.headers?.[RING_OFFSET_HEADER]));
      expect(ringOffsets).toEqual([...ringOffsets].sort((a, b) => a - b));
      expect(new Set(ringOffsets).size).toBe(ringOffsets.length);
    } finally {
      w.close();
    }
  });

  it("sends records as JSON data with format json, and never forwards records an edge-to-local bridge wrote", async () => {
    const { ring, topic } = fresh("l2ejson");
    const w = Ring.create(ring, { capacity: 1 << 16 });
    try {
      w.publish(new TextEncoder().encode(JSON.stringify({ a: 1 })));
      w.publish(new TextEncoder().encode("not json"));
      w.publish(new Uint8Array(12), 0xfe00); // looks like an edge-to-local record: skipped (echo guard)
      const b = bridge({ ring, topic, direction: "local-to-edge", bus: sdk, format: "json" });
      await b.ready;
      await until("2 records confirmed", () => b.stats.records === 2);
      await b.close();
      expect(b.stats).toMatchObject({ skipped: 1, jsonFallbacks: 1 });
      const messages = await readAllOverHttp(topic);
      expect(messages).toHaveLength(2);
      expect(messages[0]!.data).toEqual({ a: 1 });
      expect(text(Buffer.from(messages[1]!.bytes!, "base64"))).toBe("not json");
    } finally {
      w.close();
    }
  });
});

describe("options and command line", () => {
  it("refuses direction both with a clear error", () => {
    expect(() => bridge({ ring: "x", topic: "t", direction: "both", bus: sdk })).toThrow(BridgeError);
    expect(() => bridge({ ring: "x", topic: "t", direction: "both", bus: sdk })).toThrow(/one producer/);
  });

  it("exits 2 on a usage error", () => {
    const run = (...args: string[]): number => {
      try {
        execFileSync(nodeBin(), [CLI, ...args], { stdio: "ignore" });
        return 0;
      } catch (error) {
        return (error as { status: number }).status;
      }
    };
    expect(run("bridge", "ring-a")).toBe(2);
    expect(run("bridge", "ring-a", "topic.a", "--direction", "both")).toBe(2);
    expect(run("bridge", "ring-a", "topic.a", "--direction", "local-to-edge", "--from", "earliest")).toBe(2);
  });

  it("oldestBoundary is the start of the newest intact lap", () => {
    expect(oldestBoundary(0, 4096)).toBe(0);
    expect(oldestBoundary(4096, 4096)).toBe(0);
    expect(oldestBoundary(5000, 4096)).toBe(4096);
    expect(oldestBoundary(8192, 4096)).toBe(4096);
  });
});

describe("examples", () => {
  it("bridge-basic.ts forwards a ring to the edge and mirrors it back", () => {
    const out = execFileSync(nodeBin(), [EXAMPLE], { encoding: "utf8", env: { ...process.env, DOVETAIL_URL: bus.url } });
    expect(out.trim()).toBe("0:hello 1:world");
  });
});
