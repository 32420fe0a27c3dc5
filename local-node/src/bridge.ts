/**
 * The edge bridge: keeps a local ring and an edge topic in step, in one direction per bridge.
 *
 * - `edge-to-local`: subscribe to the topic with the SDK and publish into the ring in batches (the
 *   bridge is the ring's producer). Each ring record carries the edge offset as an 8-byte prefix
 *   and a record type that says how to read the rest (`EDGE_BYTES_TYPE`, `EDGE_JSON_TYPE`).
 *   Resume: the last edge offset found in the ring itself (scanning the newest lap), else a small
 *   checkpoint file next to the ring; subscribe from that offset + 1.
 * - `local-to-edge`: read the ring as a consumer and publish with the SDK's batching publisher
 *   (confirms after durable commit). Each message carries headers `ring` (the source name) and
 *   `ring-offset`. Resume: the newest message of this source on the edge topic's tail names the
 *   last ring record stored; the consumer continues after it. Records lost meanwhile (overwritten
 *   in the ring) are reported as a gap and marked on the next message (`ring-lost`), never hidden.
 *
 * `both` is refused: a ring has one producer, so mirroring into the same ring that local agents
 * publish into cannot work. Run two bridges over two rings (an inbound and an outbound one);
 * `local-to-edge` never forwards records that an `edge-to-local` bridge wrote (echo guard).
 *
 * Record format and resume rules: docs/local-node.md, "Edge bridge".
 *
 * @example
 * import { bridge } from "@dovetail/local-node";
 * const up = bridge({ ring: "agents-out", topic: "agents.events", direction: "local-to-edge", url });
 * const down = bridge({ ring: "agents-in", topic: "agents.events", direction: "edge-to-local", url });
 * await down.ready;              // resume point chosen, streaming
 * await up.close(); await down.close();
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect, DovetailError, type Bus, type Message } from "@dovetail/sdk";
import { BridgeError, BridgeErrorCode } from "./errors.ts";
import { FULL, Ring, ringPath, type CreateOptions, type RingGap, type RingReader, type RingRecord, type RingWriter } from "./ring.ts";

/** Ring record type of an edge message whose payload was bytes: prefix, then the bytes as published. */
export const EDGE_BYTES_TYPE = 0xfe00;
/** Ring record type of an edge message whose payload was JSON: prefix, then its UTF-8 JSON text. */
export const EDGE_JSON_TYPE = 0xfe01;
/** Bytes of the edge-offset prefix of a bridged record (u64, little-endian). */
export const EDGE_OFFSET_BYTES = 8;
/** Header naming the source ring of a message forwarded by `local-to-edge`. */
export const RING_HEADER = "ring";
/** Header with the ring offset (decimal) of a message forwarded by `local-to-edge`. */
export const RING_OFFSET_HEADER = "ring-offset";
/** Header with the ring bytes lost just before this message (decimal), when there was a gap. */
export const RING_LOST_HEADER = "ring-lost";

const TWO_POW_32 = 4294967296;
const DEFAULT_MAX_BATCH = 256;
const DEFAULT_RESUME_SCAN_MESSAGES = 100_000;
/** After a crashed local-to-edge bridge, frames it wrote before dying may still be committing. */
const DEFAULT_SETTLE_MS = 500;
const HTTP_READ_LIMIT = 1000;
const WAIT_SLICE_MS = 250;
const FULL_BACKOFF_MAX_MS = 50;
const SCAN_BATCH = 1024;

export type BridgeDirection = "edge-to-local" | "local-to-edge";

export interface BridgeOptions {
  /** Ring name (in /dev/shm). edge-to-local creates or adopts it; local-to-edge opens it. */
  ring: string;
  /** Edge topic name. */
  topic: string;
  direction: BridgeDirection | "both";
  /** Bus URL (default `$DOVETAIL_URL`, else http://127.0.0.1:8787). Ignored when `bus` is given. */
  url?: string;
  /** API token (default `$DOVETAIL_TOKEN`). */
  token?: string;
  /** Use this SDK connection (not closed by the bridge) instead of connecting to `url`. */
  bus?: Bus;
  /**
   * local-to-edge: how ring bytes become an edge message. `"bytes"` (default): the SDK's `bytes`
   * (a Uint8Array comes back to subscribers). `"json"`: the record is UTF-8 JSON text and is sent as
   * `data`; a record that is not valid JSON is sent as bytes (counted in `stats.jsonFallbacks`).
   * edge-to-local needs no format: the record type says which one each message was.
   */
  format?: "bytes" | "json";
  /**
   * Where to start when there is no resume point. edge-to-local: an edge offset, `"earliest"`
   * (default) or `"latest"`. local-to-edge: `"oldest"` (default: the oldest record the ring still
   * holds on a known boundary) or `"head"` (only records published from now on).
   */
  from?: number | "earliest" | "latest" | "oldest" | "head";
  /** edge-to-local: options for `Ring.create` when the bridge creates the ring. */
  ringOptions?: Omit<CreateOptions, "onFull" | "timeoutMs">;
  /** Records per ring batch (edge-to-local) or per edge frame (local-to-edge). Default 256. */
  maxBatch?: number;
  /** local-to-edge publisher: linger (default 5 ms) and frames in flight (default 8). */
  lingerMs?: number;
  maxInFlight?: number;
  /** local-to-edge: value of the `ring` header; default the ring name. Make it unique per host if several hosts share a topic. */
  source?: string;
  /** local-to-edge: most edge messages read back from the tail to find the resume point. Default 100,000. */
  resumeScanMessages?: number;
  /** local-to-edge: wait this long after a crashed predecessor before reading the tail. Default 500. */
  settleMs?: number;
  /** edge-to-local: write the checkpoint file after each batch. Default true. */
  checkpoint?: boolean;
  /** Resume, gap and stop events. */
  onEvent?: (event: BridgeEvent) => void;
}

/** Where a bridge started and why. */
export interface BridgeResume {
  direction: BridgeDirection;
  /** ring: found in the ring; checkpoint: from the checkpoint file; edge: from the edge topic's tail; fresh: no resume point, `from` used. */
  via: "ring" | "checkpoint" | "edge" | "fresh";
  /** edge-to-local: the edge offset subscribed from (or "earliest"/"latest"). */
  edgeFrom?: number | "earliest" | "latest";
  /** local-to-edge: the ring position the consumer starts at (undefined = the head). */
  ringFrom?: number;
  /** local-to-edge: the last ring offset already on the edge, skipped when read again. */
  lastRingOffset?: number;
  /** edge-to-local: the last edge offset already in the ring. */
  lastEdgeOffset?: number;
}

export type BridgeEvent =
  | ({ type: "resume" } & BridgeResume)
  | { type: "gap"; from: number; to: number; reason: RingGap["reason"] | "overwritten" }
  | { type: "checkpoint-ignored"; reason: string }
  | { type: "stopped"; error?: string };

export interface BridgeStats {
  /** Records written to the ring (edge-to-local) or confirmed by the edge (local-to-edge). */
  records: number;
  batches: number;
  /** local-to-edge: ring records not forwarded because an edge-to-local bridge wrote them (echo guard). */
  skipped: number;
  gaps: number;
  lostBytes: number;
  jsonFallbacks: number;
  /** Last edge offset written to the ring / confirmed by the edge. */
  lastEdgeOffset: number | null;
  /** Last ring offset written (edge-to-local) / whose message the edge confirmed (local-to-edge). */
  lastRingOffset: number | null;
}

/** A running bridge, from {@link bridge}. */
export interface Bridge {
  /** Resolves once the resume point is chosen and records flow; rejects like `done` if start fails. */
  readonly ready: Promise<BridgeResume>;
  /** Resolves after `close()`; rejects with a BridgeError, RingError or DovetailError if the bridge fails. */
  readonly done: Promise<void>;
  readonly stats: BridgeStats;
  /** Stop: finish the current batch (local-to-edge: wait for its confirms), release the ring, close. */
  close(): Promise<void>;
}

/** A bridged record's parts, from {@link decodeEdgeRecord}. */
export interface EdgeRecord {
  edgeOffset: number;
  /** The message's bytes (EDGE_BYTES_TYPE) or UTF-8 JSON text (EDGE_JSON_TYPE); a view into `rec.data`. */
  payload: Uint8Array;
  json: boolean;
}

/**
 * Read a record written by an edge-to-local bridge; null for any other record.
 *
 * @example
 * for await (const rec of Ring.open("agents-in")) {
 *   const e = decodeEdgeRecord(rec);
 *   if (e) console.log(e.edgeOffset, e.json ? JSON.parse(new TextDecoder().decode(e.payload)) : e.payload);
 * }
 */
export function decodeEdgeRecord(rec: Pick<RingRecord, "type" | "data">): EdgeRecord | null {
  if ((rec.type !== EDGE_BYTES_TYPE && rec.type !== EDGE_JSON_TYPE) || rec.data.length < EDGE_OFFSET_BYTES) return null;
  const view = new DataView(rec.data.buffer, rec.data.byteOffset, EDGE_OFFSET_BYTES);
  const edgeOffset = view.getUint32(0, true) + view.getUint32(4, true) * TWO_POW_32;
  return { edgeOffset, payload: rec.data.subarray(EDGE_OFFSET_BYTES), json: rec.type === EDGE_JSON_TYPE };
}

const encoder = new TextEncoder();

/** Prefix + payload of one edge message; its record type. */
function encodeEdgeRecord(message: Message): { bytes: Uint8Array; type: number } {
  const isBytes = message.data instanceof Uint8Array;
  const payload = isBytes ? (message.data as Uint8Array) : encoder.encode(JSON.stringify(message.data));
  const bytes = new Uint8Array(EDGE_OFFSET_BYTES + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, message.offset % TWO_POW_32, true);
  view.setUint32(4, Math.floor(message.offset / TWO_POW_32), true);
  bytes.set(payload, EDGE_OFFSET_BYTES);
  return { bytes, type: isBytes ? EDGE_BYTES_TYPE : EDGE_JSON_TYPE };
}

/** Checkpoint file of an edge-to-local bridge into `ring`: next to the segment, `<segment>.bridge.json`. */
export function bridgeCheckpointPath(ring: string): string {
  return `${ringPath(ring)}.bridge.json`;
}

/** Lock file of a local-to-edge bridge from `ring` to `topic` (holds its pid). */
export function bridgeLockPath(ring: string, topic: string): string {
  return `${ringPath(ring)}.bridge-out.${encodeURIComponent(topic)}.pid`;
}

/** Remove a ring's bridge files (checkpoint and lock files of `topics`); for cleanup next to Ring.unlink. */
export function unlinkBridgeFiles(ring: string, topics: readonly string[] = []): void {
  rmSync(bridgeCheckpointPath(ring), { force: true });
  for (const topic of topics) rmSync(bridgeLockPath(ring, topic), { force: true });
}

/**
 * The oldest position of ring data that is both intact and a known record boundary. A record is
 * never split across the end of the ring, so every multiple of the capacity starts a record (or is
 * the head); the newest such multiple at or below the head starts the current lap, whose bytes up
 * to the head are intact. When the head sits exactly on a multiple, the whole previous lap is.
 */
export function oldestBoundary(head: number, capacity: number): number {
  if (head <= capacity) return 0;
  const lap = head - (head % capacity);
  return lap === head ? head - capacity : lap;
}

/**
 * Start a bridge. Returns at once; `ready` tells when it streams, `done` when it stops.
 *
 * @example
 * const b = bridge({ ring: "agents-in", topic: "agents.events", direction: "edge-to-local", url: "http://127.0.0.1:8787" });
 * const resume = await b.ready;  // { via: "ring", edgeFrom: 1234, ... }
 * process.once("SIGTERM", () => void b.close());
 * await b.done;
 */
export function bridge(options: BridgeOptions): Bridge {
  const o = checkOptions(options);
  const run = new Run(o);
  return run.handle();
}

interface Checked extends BridgeOptions {
  direction: BridgeDirection;
  maxBatch: number;
  format: "bytes" | "json";
}

function checkOptions(options: BridgeOptions): Checked {
  const invalid = (message: string): BridgeError => new BridgeError(BridgeErrorCode.INVALID, message);
  if (options.direction === "both") {
    throw invalid(
      `direction "both" is not supported: a ring has one producer, so the bridge cannot mirror the edge into the ring that local agents publish into. ` +
        `Run two bridges over two rings: edge-to-local into an inbound ring and local-to-edge from an outbound one`,
    );
  }
  if (options.direction !== "edge-to-local" && options.direction !== "local-to-edge") {
    throw invalid(`direction must be "edge-to-local" or "local-to-edge", got ${JSON.stringify(options.direction)}`);
  }
  ringPath(options.ring); // validates the name (RingError INVALID)
  const format = options.format ?? "bytes";
  if (format !== "bytes" && format !== "json") throw invalid(`format must be "bytes" or "json", got ${JSON.stringify(format)}`);
  const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw invalid(`maxBatch must be a positive integer, got ${maxBatch}`);
  const from = options.from;
  if (from !== undefined) {
    const ok =
      options.direction === "edge-to-local"
        ? from === "earliest" || from === "latest" || (typeof from === "number" && Number.isSafeInteger(from) && from >= 0)
        : from === "oldest" || from === "head";
    if (!ok) {
      throw invalid(
        options.direction === "edge-to-local"
          ? `from (edge-to-local) must be an edge offset, "earliest" or "latest", got ${JSON.stringify(from)}`
          : `from (local-to-edge) must be "oldest" or "head", got ${JSON.stringify(from)}`,
      );
    }
  }
  return { ...options, direction: options.direction, maxBatch, format };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface Checkpoint {
  version: 1;
  topic: string;
  edgeOffset: number;
  ringOffset: number;
}

function readCheckpoint(path: string): Checkpoint | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    const c = JSON.parse(text) as Partial<Checkpoint>;
    if (c.version === 1 && typeof c.topic === "string" && Number.isSafeInteger(c.edgeOffset) && Number.isSafeInteger(c.ringOffset)) return c as Checkpoint;
  } catch {
    // fall through: a torn write is impossible (rename), so this is someone else's file
  }
  throw new BridgeError(BridgeErrorCode.RESUME, `${path} is not a bridge checkpoint; remove it if it is stale`);
}

/** Write-then-rename, so a crash leaves the old checkpoint or the new one, never half of one. */
function writeCheckpoint(path: string, c: Checkpoint): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(c));
  renameSync(tmp, path);
}

class Run {
  readonly o: Checked;
  readonly stats: BridgeStats = { records: 0, batches: 0, skipped: 0, gaps: 0, lostBytes: 0, jsonFallbacks: 0, lastEdgeOffset: null, lastRingOffset: null };
  closed = false;
  bus: Bus | null = null;
  stopCurrent: (() => void) | null = null;
  resolveReady!: (r: BridgeResume) => void;
  rejectReady!: (e: unknown) => void;
  readonly ready: Promise<BridgeResume>;
  done!: Promise<void>;

  constructor(o: Checked) {
    this.o = o;
    this.ready = new Promise<BridgeResume>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed through done
  }

  handle(): Bridge {
    this.done = this.main();
    return {
      ready: this.ready,
      done: this.done,
      stats: this.stats,
      close: async () => {
        this.closed = true;
        this.stopCurrent?.();
        await this.done.catch(() => {});
      },
    };
  }

  emit(event: BridgeEvent): void {
    this.o.onEvent?.(event);
  }

  started(resume: BridgeResume): void {
    this.emit({ type: "resume", ...resume });
    this.resolveReady(resume);
  }

  gap(from: number, to: number, reason: RingGap["reason"] | "overwritten"): void {
    this.stats.gaps++;
    this.stats.lostBytes += Math.max(0, to - from);
    this.emit({ type: "gap", from, to, reason });
  }

  async main(): Promise<void> {
    const own = this.o.bus === undefined;
    this.bus = this.o.bus ?? connect(this.o.url ?? process.env.DOVETAIL_URL ?? "http://127.0.0.1:8787", { token: this.o.token ?? process.env.DOVETAIL_TOKEN });
    let failure: unknown;
    try {
      if (this.o.direction === "edge-to-local") await this.edgeToLocal();
      else await this.localToEdge();
    } catch (error) {
      failure = error;
    }
    if (own) await this.bus.close({ force: failure !== undefined }).catch(() => {});
    this.emit(failure === undefined ? { type: "stopped" } : { type: "stopped", error: String((failure as Error).message ?? failure) });
    if (failure !== undefined) {
      this.rejectReady(failure);
      throw failure;
    }
    this.rejectReady(new BridgeError(BridgeErrorCode.CLOSED, "the bridge was closed before it started"));
  }

  // ---------------------------------------------------------------- edge-to-local ------------

  async edgeToLocal(): Promise<void> {
    const o = this.o;
    const writer = Ring.create(o.ring, { ...o.ringOptions, onFull: "fail" });
    try {
      const resume = this.findEdgeResume(writer);
      if (this.closed) return;
      const sub = this.bus!.subscribe(o.topic, { from: resume.edgeFrom ?? "earliest", buffer: Math.max(1000, o.maxBatch * 4) });
      this.stopCurrent = () => sub.close();
      if (this.closed) sub.close();
      this.started(resume);
      const checkpointPath = bridgeCheckpointPath(o.ring);
      const maxBatchBytes = writer.capacityBytes >> 2;
      const records: Uint8Array[] = [];
      const types: number[] = [];
      for (;;) {
        let first: IteratorResult<Message>;
        try {
          first = await sub.next();
        } catch (error) {
          throw new BridgeError(BridgeErrorCode.EDGE, `subscription to ${o.topic} failed: ${(error as Error).message}`, { cause: error });
        }
        if (first.done) return;
        let message = first.value;
        let bytes = 0;
        let lastOffset = message.offset;
        for (;;) {
          const r = encodeEdgeRecord(message);
          records.push(r.bytes);
          types.push(r.type);
          bytes += r.bytes.length + 24;
          lastOffset = message.offset;
          // Take what is already buffered (next() resolves at once), up to a batch.
          if (sub.buffered === 0 || records.length >= o.maxBatch || bytes >= maxBatchBytes) break;
          const more = await sub.next();
          if (more.done) break;
          message = more.value;
        }
        const offset = await this.publishRing(writer, records, types);
        if (offset === null) return; // closed while the ring was full: nothing written, resume covers it
        this.stats.records += records.length;
        this.stats.batches++;
        this.stats.lastEdgeOffset = lastOffset;
        this.stats.lastRingOffset = offset;
        if (o.checkpoint !== false) writeCheckpoint(checkpointPath, { version: 1, topic: o.topic, edgeOffset: lastOffset, ringOffset: offset });
        records.length = 0;
        types.length = 0;
      }
    } finally {
      this.stopCurrent = null;
      writer.close();
    }
  }

  /** publishBatch, retrying on FULL without blocking the event loop; null if closed meanwhile. */
  async publishRing(writer: RingWriter, records: Uint8Array[], types: number[]): Promise<number | null> {
    for (let backoffMs = 1; ; backoffMs = Math.min(FULL_BACKOFF_MAX_MS, backoffMs * 2)) {
      const offset = writer.publishBatch(records, types);
      if (offset !== FULL) return offset;
      if (this.closed) return null;
      await sleep(backoffMs);
    }
  }

  /** Last edge offset in the ring (newest lap scanned), else the checkpoint, else `from`. */
  findEdgeResume(writer: RingWriter): BridgeResume {
    const o = this.o;
    const head = writer.position;
    let found: { edgeOffset: number; ringOffset: number } | undefined;
    if (head > 0) {
      const r = Ring.open(o.ring, { from: oldestBoundary(head, writer.capacityBytes) });
      try {
        // Bounded: we are the producer, so the head does not move while we scan.
        for (let batch = r.pollBatch(SCAN_BATCH); batch.length > 0; batch = r.pollBatch(SCAN_BATCH)) {
          for (const rec of batch) {
            const e = decodeEdgeRecord(rec);
            if (e !== null) found = { edgeOffset: e.edgeOffset, ringOffset: rec.offset };
          }
        }
      } finally {
        r.close();
      }
    }
    let checkpoint = readCheckpoint(bridgeCheckpointPath(o.ring));
    if (checkpoint !== null && checkpoint.topic !== o.topic) {
      throw new BridgeError(
        BridgeErrorCode.RESUME,
        `ring ${JSON.stringify(o.ring)} mirrors topic ${JSON.stringify(checkpoint.topic)} (checkpoint ${bridgeCheckpointPath(o.ring)}), not ${JSON.stringify(o.topic)}: ` +
          `one ring mirrors one topic; use another ring, or remove the checkpoint to start over`,
      );
    }
    if (checkpoint !== null && checkpoint.ringOffset >= head) {
      // The checkpoint names a record past the head: the ring was recreated since. Its (empty or
      // newer) contents are the truth.
      this.emit({ type: "checkpoint-ignored", reason: `checkpoint ring offset ${checkpoint.ringOffset} is past the head ${head}: the ring was recreated` });
      checkpoint = null;
    }
    const base = { direction: "edge-to-local" as const };
    if (found !== undefined && (checkpoint === null || found.edgeOffset >= checkpoint.edgeOffset)) {
      return { ...base, via: "ring", lastEdgeOffset: found.edgeOffset, edgeFrom: found.edgeOffset + 1 };
    }
    if (checkpoint !== null) return { ...base, via: "checkpoint", lastEdgeOffset: checkpoint.edgeOffset, edgeFrom: checkpoint.edgeOffset + 1 };
    const from = o.from as number | "earliest" | "latest" | undefined;
    return { ...base, via: "fresh", edgeFrom: from ?? "earliest" };
  }

  // ---------------------------------------------------------------- local-to-edge ------------

  async localToEdge(): Promise<void> {
    const o = this.o;
    const lockPath = bridgeLockPath(o.ring, o.topic);
    const crashed = this.takeLock(lockPath);
    let reader: RingReader | null = null;
    try {
      if (crashed) await sleep(o.settleMs ?? DEFAULT_SETTLE_MS);
      const source = o.source ?? o.ring;
      const last = await this.lastOnEdge(source);
      if (this.closed) return;
      const stat = Ring.stat(o.ring);
      let from: number | undefined;
      let resume: BridgeResume;
      let lostCarry = 0;
      if (last !== undefined) {
        if (last.ringOffset >= stat.head) {
          throw new BridgeError(
            BridgeErrorCode.RESUME,
            `topic ${JSON.stringify(o.topic)} already holds ring offset ${last.ringOffset} from ${JSON.stringify(source)} (edge offset ${last.edgeOffset}), ` +
              `but the ring's head is ${stat.head}: the ring was recreated. Use a new topic, or another source name`,
          );
        }
        if (stat.head - last.ringOffset > stat.capacity) {
          // The record after the last one stored was overwritten while no bridge ran: say so.
          from = oldestBoundary(stat.head, stat.capacity);
          this.gap(last.ringOffset, from, "overwritten");
          lostCarry = from - last.ringOffset;
        } else {
          from = last.ringOffset; // read it again and skip it: its successor's position is not known
        }
        resume = { direction: "local-to-edge", via: "edge", ringFrom: from, lastRingOffset: last.ringOffset, lastEdgeOffset: last.edgeOffset };
      } else {
        from = o.from === "head" ? undefined : oldestBoundary(stat.head, stat.capacity);
        resume = { direction: "local-to-edge", via: "fresh", ...(from === undefined ? {} : { ringFrom: from }) };
      }
      const skipThrough = last?.ringOffset ?? -1;
      reader = Ring.open(o.ring, {
        ...(from === undefined ? {} : { from }),
        onGap: (g) => this.gap(g.from, g.to, g.reason),
      });
      const r = reader;
      const pub = this.bus!.publisher(o.topic, {
        maxBatch: o.maxBatch,
        ...(o.lingerMs === undefined ? {} : { lingerMs: o.lingerMs }),
        ...(o.maxInFlight === undefined ? {} : { maxInFlight: o.maxInFlight }),
      });
      this.started(resume);
      let failure: unknown;
      const decoder = new TextDecoder("utf-8", { fatal: true });
      while (!this.closed && failure === undefined) {
        const batch = r.pollBatch(o.maxBatch);
        if (batch.length === 0) {
          await r.waitAsync(WAIT_SLICE_MS);
          continue;
        }
        for (const rec of batch) {
          lostCarry += rec.lost;
          if (rec.offset <= skipThrough) continue;
          if (rec.type === EDGE_BYTES_TYPE || rec.type === EDGE_JSON_TYPE) {
            this.stats.skipped++; // echo guard: an edge-to-local bridge wrote it
            continue;
          }
          const headers: Record<string, string> = { [RING_HEADER]: source, [RING_OFFSET_HEADER]: String(rec.offset) };
          if (lostCarry > 0) {
            headers[RING_LOST_HEADER] = String(lostCarry);
            lostCarry = 0;
          }
          const bytes = rec.data.slice(); // the view is released at the next poll
          let data: unknown = bytes;
          if (o.format === "json") {
            try {
              data = JSON.parse(decoder.decode(bytes));
            } catch {
              this.stats.jsonFallbacks++;
            }
          }
          if (pub.queued >= 10_000) await pub.ready();
          const ringOffset = rec.offset;
          pub.send(data, { headers }).then(
            (edgeOffset) => {
              this.stats.records++;
              this.stats.lastEdgeOffset = edgeOffset;
              this.stats.lastRingOffset = ringOffset;
            },
            (error: unknown) => {
              failure ??= new BridgeError(BridgeErrorCode.EDGE, `the edge refused ring record ${ringOffset}: ${(error as Error).message}`, { cause: error });
            },
          );
          if (failure !== undefined) break;
        }
        this.stats.batches++;
      }
      await pub.flush();
      if (failure !== undefined) throw failure;
    } finally {
      this.stopCurrent = null;
      reader?.close();
      this.releaseLock(lockPath);
    }
  }

  /** Take the lock file; true when a previous owner died without releasing it (a crash). */
  takeLock(path: string): boolean {
    let crashed = false;
    if (existsSync(path)) {
      const pid = Number(readFileSync(path, "utf8").trim());
      if (pid !== process.pid && pidAlive(pid)) {
        throw new BridgeError(
          BridgeErrorCode.INVALID,
          `another bridge (pid ${pid}) already forwards ring ${JSON.stringify(this.o.ring)} to ${JSON.stringify(this.o.topic)} (${path})`,
        );
      }
      crashed = true;
      rmSync(path, { force: true });
    }
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        throw new BridgeError(
          BridgeErrorCode.INVALID,
          `another bridge started forwarding ring ${JSON.stringify(this.o.ring)} to ${JSON.stringify(this.o.topic)} at the same time`,
        );
      }
      throw error;
    }
    return crashed;
  }

  releaseLock(path: string): void {
    try {
      if (Number(readFileSync(path, "utf8").trim()) === process.pid) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  }

  /**
   * The newest message on the edge topic that came from `source`: read the tail backwards in
   * pages over HTTP. Undefined when the whole topic has none; BRIDGE_RESUME when the scan limit
   * is reached first (nothing is guessed).
   */
  async lastOnEdge(source: string): Promise<{ ringOffset: number; edgeOffset: number } | undefined> {
    const bus = this.bus!;
    const o = this.o;
    const limit = o.resumeScanMessages ?? DEFAULT_RESUME_SCAN_MESSAGES;
    const info = await bus.info(o.topic);
    let earliest = info.earliest;
    let end = info.head;
    let scanned = 0;
    while (end > earliest) {
      if (scanned >= limit) {
        throw new BridgeError(
          BridgeErrorCode.RESUME,
          `no message from ${JSON.stringify(source)} in the last ${scanned} messages of ${JSON.stringify(o.topic)} (offsets ${end}..${info.head - 1}); ` +
            `raise resumeScanMessages, or use a topic of its own`,
        );
      }
      const start = Math.max(earliest, end - HTTP_READ_LIMIT);
      let messages: Message[];
      try {
        messages = (await bus.read(o.topic, { from: start, limit: end - start })).messages;
      } catch (error) {
        if (error instanceof DovetailError && error.code === "offset_trimmed" && error.details.earliest !== undefined) {
          earliest = error.details.earliest; // retention moved on while we read
          continue;
        }
        throw error;
      }
      for (let i = messages.length - 1; i >= 0; i--) {
        const m = messages[i]!;
        if (m.offset >= end || m.headers[RING_HEADER] !== source) continue;
        const ringOffset = Number(m.headers[RING_OFFSET_HEADER]);
        if (Number.isSafeInteger(ringOffset) && ringOffset >= 0) return { ringOffset, edgeOffset: m.offset };
      }
      scanned += end - start;
      end = start;
    }
    return undefined;
  }
}
