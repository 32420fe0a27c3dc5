/**
 * TCP relay: a server that drains a ring and broadcasts its records to TCP clients, and a client
 * that reconnects by itself and resumes from its last offset. Frames: see protocol.ts.
 *
 * @example
 * const server = await RelayServer.listen({ ring: "agents", port: 0 });
 * const client = RelayClient.connect({ port: server.port, onRecord: (data, offset) => … });
 * await client.ready();
 * await client.publish([bytes]); // needs a relay started with `writer`
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { RelayError, RelayErrorCode } from "./errors.ts";
import {
  encodeError,
  encodeGap,
  encodeHello,
  encodePublish,
  encodePublished,
  encodeWarn,
  encodeWelcome,
  ErrorCode,
  forEachPublished,
  forEachRecord,
  type Frame,
  FrameReader,
  RecordsEncoder,
  RESUME_FROM_NOW,
} from "./protocol.ts";
import { FULL, Ring, type RingReader, type RingWriter } from "./ring.ts";

/** Loopback only unless the caller says otherwise. */
const DEFAULT_HOST = "127.0.0.1";
/** A client whose unsent bytes pass this is dropped (it reconnects and resumes). */
const DEFAULT_MAX_QUEUE_BYTES = 8 * 1024 * 1024;
/** Frames kept for clients that reconnect; older resume points get a GAP. */
const DEFAULT_REPLAY_BYTES = 32 * 1024 * 1024;
/** Adaptive drain window (records per frame): grows while the ring has more, shrinks when idle. */
const MIN_BATCH_RECORDS = 16;
const MAX_BATCH_RECORDS = 4096;
/** Frames built per event-loop turn before yielding to socket I/O. */
const BURSTS_PER_TURN = 8;
/** Longest futex sleep of the relay's ring consumer, so close() is noticed. */
const IDLE_WAIT_MS = 100;

export type RelayEvent =
  | { type: "connect"; client: number; remote: string }
  | { type: "disconnect"; client: number; reason: string }
  | { type: "warn"; client: number; queuedBytes: number; limitBytes: number }
  | { type: "drop"; client: number; queuedBytes: number; limitBytes: number }
  | { type: "gap"; from: number; to: number };

export interface RelayServerOptions {
  /** Ring to drain and broadcast. */
  ring: string;
  /** Producer handle for the same ring; without it PUBLISH frames are refused (NOT_PRODUCER). */
  writer?: RingWriter;
  host?: string;
  /** 0 picks a free port (see `server.port`). */
  port?: number;
  maxQueueBytes?: number;
  /** Warning mark; default half of maxQueueBytes. */
  warnQueueBytes?: number;
  replayBytes?: number;
  onEvent?: (event: RelayEvent) => void;
}

interface ClientConn {
  id: number;
  socket: Socket;
  reader: FrameReader;
  live: boolean;
  warned: boolean;
}

interface ReplayFrame {
  first: number;
  end: number;
  frame: Buffer;
}

/**
 * Drains ring `ring` and broadcasts each batch as one RECORDS frame, written once per client.
 *
 * @example
 * const server = await RelayServer.listen({ ring: "agents", port: 7400, onEvent: console.log });
 * …
 * await server.close();
 */
export class RelayServer {
  readonly port: number;
  readonly host: string;
  private readonly server: Server;
  private readonly consumer: RingReader;
  private readonly writer: RingWriter | undefined;
  private readonly clients = new Map<number, ClientConn>();
  private readonly encoder = new RecordsEncoder();
  private readonly maxQueueBytes: number;
  private readonly warnQueueBytes: number;
  private readonly replayBytes: number;
  private readonly onEvent: (event: RelayEvent) => void;
  private readonly replay: ReplayFrame[] = [];
  private replayHeld = 0;
  private batchRecords = MIN_BATCH_RECORDS * 4;
  private nextClientId = 1;
  private closed = false;
  private pumpDone: Promise<void> = Promise.resolve();
  /** Relay counters. */
  readonly stats = { records: 0, frames: 0, bytesOut: 0, published: 0, drops: 0, warnings: 0 };

  private constructor(server: Server, consumer: RingReader, options: RelayServerOptions, port: number) {
    this.server = server;
    this.consumer = consumer;
    this.writer = options.writer;
    this.port = port;
    this.host = options.host ?? DEFAULT_HOST;
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.warnQueueBytes = options.warnQueueBytes ?? this.maxQueueBytes >> 1;
    this.replayBytes = options.replayBytes ?? DEFAULT_REPLAY_BYTES;
    this.onEvent = options.onEvent ?? (() => {});
  }

  /** Attach a consumer to the ring and start listening. */
  static async listen(options: RelayServerOptions): Promise<RelayServer> {
    const consumer = Ring.open(options.ring);
    const server = createServer({ noDelay: true });
    const host = options.host ?? DEFAULT_HOST;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.port ?? 0, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      consumer.close();
      throw error;
    }
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const relay = new RelayServer(server, consumer, options, port);
    server.on("connection", (socket) => relay.accept(socket));
    relay.pumpDone = relay.pump();
    return relay;
  }

  /** Number of connected clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Stop accepting, disconnect everyone, detach from the ring. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const client of this.clients.values()) client.socket.destroy();
    this.clients.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.pumpDone;
    this.consumer.close();
  }

  private accept(socket: Socket): void {
    const client: ClientConn = { id: this.nextClientId++, socket, reader: new FrameReader(64 * 1024), live: false, warned: false };
    this.clients.set(client.id, client);
    socket.setNoDelay(true);
    this.onEvent({ type: "connect", client: client.id, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    socket.on("data", (chunk: Buffer) => this.onData(client, chunk));
    socket.on("drain", () => {
      if (client.warned && socket.writableLength < this.warnQueueBytes >> 1) client.warned = false;
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.clients.delete(client.id)) this.onEvent({ type: "disconnect", client: client.id, reason: "closed" });
    });
  }

  private onData(client: ClientConn, chunk: Buffer): void {
    client.reader.push(chunk);
    for (let frame = client.reader.next(); frame !== null; frame = client.reader.next()) {
      if (frame.type === "invalid") return this.fail(client, ErrorCode.BAD_FRAME, frame.reason);
      this.onFrame(client, frame);
      if (client.socket.destroyed) return;
    }
  }

  private onFrame(client: ClientConn, frame: Frame): void {
    switch (frame.type) {
      case "hello":
        return this.hello(client, frame.resumeFrom);
      case "publish":
        return this.publish(client, frame);
      default:
        return this.fail(client, ErrorCode.BAD_FRAME, `unexpected ${frame.type} frame from a client`);
    }
  }

  private hello(client: ClientConn, resumeFrom: number): void {
    const oldest = this.replay.length > 0 ? this.replay[0]!.first : this.consumer.position;
    client.socket.write(encodeWelcome(this.consumer.position, oldest, this.maxQueueBytes, 0));
    if (resumeFrom !== RESUME_FROM_NOW) {
      if (resumeFrom < oldest) client.socket.write(encodeGap(resumeFrom, oldest));
      // Whole frames from the one holding resumeFrom; the client drops records below resumeFrom.
      for (const r of this.replay) if (r.end > resumeFrom) client.socket.write(r.frame);
    }
    client.live = true;
  }

  private publish(client: ClientConn, frame: Extract<Frame, { type: "publish" }>): void {
    if (this.writer === undefined) {
      client.socket.write(encodeError(ErrorCode.NOT_PRODUCER, "this relay does not own the ring's producer", frame.requestId));
      return;
    }
    const views: Uint8Array[] = [];
    const types: number[] = [];
    const ok = forEachPublished(frame, (bytes, start, length, t) => {
      views.push(bytes.subarray(start, start + length));
      types.push(t);
    });
    if (!ok) return this.fail(client, ErrorCode.BAD_FRAME, "PUBLISH entry runs past its frame");
    let last: number;
    try {
      last = this.writer.publishBatch(views, types);
    } catch (error) {
      client.socket.write(encodeError(ErrorCode.TOO_LARGE, (error as Error).message, frame.requestId));
      return;
    }
    if (last === FULL) {
      client.socket.write(encodeError(ErrorCode.FULL, "ring full: a local consumer is a ring behind", frame.requestId));
      return;
    }
    this.stats.published += views.length;
    client.socket.write(encodePublished(frame.requestId, views.length, last));
  }

  private fail(client: ClientConn, code: ErrorCode, message: string): void {
    client.socket.end(encodeError(code, message));
    client.socket.destroySoon();
  }

  private readonly addRecord = (bytes: Uint8Array, start: number, length: number, type: number, offset: number): void => {
    this.encoder.add(bytes, start, length, type, offset);
  };

  /** Drain the ring in bursts; one frame per burst, written once to every live client. */
  private async pump(): Promise<void> {
    while (!this.closed) {
      let drained = 0;
      for (let burst = 0; burst < BURSTS_PER_TURN && !this.closed; burst++) {
        this.encoder.reset();
        const from = this.consumer.position;
        const n = this.consumer.drain(this.addRecord, this.batchRecords);
        if (n < 0) {
          // Evicted as stale (the relay fell a ring behind): what it read may be overwritten.
          this.broadcast(encodeGap(from, this.consumer.position), -1, -1);
          this.onEvent({ type: "gap", from, to: this.consumer.position });
          continue;
        }
        if (n === 0) break;
        drained += n;
        this.batchRecords = n === this.batchRecords ? Math.min(this.batchRecords * 2, MAX_BATCH_RECORDS) : Math.max(MIN_BATCH_RECORDS, n);
        const frame = this.encoder.finish();
        this.stats.records += n;
        this.stats.frames++;
        this.remember(this.encoder.firstOffset, this.encoder.endOffset, frame);
        this.broadcast(frame, this.encoder.firstOffset, this.encoder.endOffset);
      }
      if (this.closed) break;
      if (drained > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      else await this.consumer.waitAsync(IDLE_WAIT_MS);
    }
  }

  private remember(first: number, end: number, frame: Buffer): void {
    if (this.replayBytes === 0) return;
    this.replay.push({ first, end, frame });
    this.replayHeld += frame.length;
    while (this.replayHeld > this.replayBytes && this.replay.length > 1) this.replayHeld -= this.replay.shift()!.frame.length;
  }

  private broadcast(frame: Buffer, _first: number, _end: number): void {
    for (const client of this.clients.values()) {
      if (!client.live || client.socket.destroyed) continue;
      const socket = client.socket;
      socket.write(frame);
      this.stats.bytesOut += frame.length;
      // Node keeps unsent bytes in the socket's writable buffer: that is the per-client queue.
      const queued = socket.writableLength;
      if (queued > this.maxQueueBytes) {
        this.stats.drops++;
        this.onEvent({ type: "drop", client: client.id, queuedBytes: queued, limitBytes: this.maxQueueBytes });
        this.clients.delete(client.id);
        this.onEvent({ type: "disconnect", client: client.id, reason: "slow" });
        socket.destroy();
      } else if (queued > this.warnQueueBytes && !client.warned) {
        client.warned = true;
        this.stats.warnings++;
        socket.write(encodeWarn(queued, this.maxQueueBytes));
        this.onEvent({ type: "warn", client: client.id, queuedBytes: queued, limitBytes: this.maxQueueBytes });
      }
    }
  }
}

export interface RelayClientOptions {
  port: number;
  host?: string;
  /**
   * Called for every record. `data` is a view into the receive buffer, valid only during the call.
   */
  onRecord: (data: Uint8Array, offset: number, type: number) => void;
  /** First offset wanted; RESUME_FROM_NOW (-1, default) for only new records. */
  resumeFrom?: number;
  onGap?: (from: number, to: number) => void;
  onWarn?: (queuedBytes: number, limitBytes: number) => void;
  /** Connection state changes, for logs. */
  onState?: (state: "connected" | "disconnected" | "reconnecting", detail?: string) => void;
  /** Backoff between reconnects: starts at initialMs, doubles up to maxMs. */
  reconnect?: { initialMs?: number; maxMs?: number; maxAttempts?: number };
}

interface PendingPublish {
  resolve: (offset: number) => void;
  reject: (error: Error) => void;
}

/**
 * Connects to a RelayServer, reconnects with backoff when the socket drops, and resumes from the
 * offset after the last record it delivered (no duplicates; a GAP if the server no longer has it).
 *
 * @example
 * const client = RelayClient.connect({ port, onRecord: (data, offset) => seen.push(offset) });
 * await client.ready();
 */
export class RelayClient {
  private readonly options: RelayClientOptions;
  private readonly host: string;
  private socket: Socket | null = null;
  private reader = new FrameReader();
  private nextOffset: number;
  private closed = false;
  private paused = false;
  private attempts = 0;
  private timer: NodeJS.Timeout | null = null;
  private readyWaiters: (() => void)[] = [];
  private welcomed = false;
  private requestId = 0;
  private readonly pending = new Map<number, PendingPublish>();
  /** Client counters. */
  readonly stats = { records: 0, duplicatesDropped: 0, reconnects: 0, warnings: 0, gaps: 0 };

  private constructor(options: RelayClientOptions) {
    this.options = options;
    this.host = options.host ?? DEFAULT_HOST;
    this.nextOffset = options.resumeFrom ?? RESUME_FROM_NOW;
  }

  static connect(options: RelayClientOptions): RelayClient {
    const client = new RelayClient(options);
    client.open();
    return client;
  }

  /** Offset the client will ask for on its next (re)connect; -1 before the first record. */
  get resumeOffset(): number {
    return this.nextOffset;
  }

  /** Resolves once the server has answered HELLO on the current connection. */
  ready(): Promise<void> {
    if (this.welcomed) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Publish records into the relay's ring; resolves with the offset of the last one.
   * Rejects with RelayError NOT_PRODUCER, FULL or CLOSED.
   */
  publish(records: readonly Uint8Array[], type = 0): Promise<number> {
    if (this.closed || this.socket === null || !this.welcomed) {
      return Promise.reject(new RelayError(RelayErrorCode.CLOSED, "not connected"));
    }
    const id = (this.requestId = (this.requestId % 0x7fffffff) + 1);
    this.socket.write(encodePublish(records, id, type));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** Stop reading from the socket (the server's queue for us grows; past its limit we get dropped). */
  pause(): void {
    this.paused = true;
    this.socket?.pause();
  }

  resume(): void {
    this.paused = false;
    this.socket?.resume();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.destroy();
    this.socket = null;
    this.failPending(new RelayError(RelayErrorCode.CLOSED, "client closed"));
  }

  private open(): void {
    const socket = tcpConnect({ host: this.host, port: this.options.port, noDelay: true });
    this.socket = socket;
    this.reader = new FrameReader();
    this.welcomed = false;
    socket.on("connect", () => {
      this.attempts = 0;
      socket.write(encodeHello(this.nextOffset));
      if (this.paused) socket.pause();
      this.options.onState?.("connected");
    });
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.welcomed = false;
      this.failPending(new RelayError(RelayErrorCode.CLOSED, "connection lost before the publish was confirmed"));
      this.options.onState?.("disconnected");
      if (!this.closed) this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const initial = this.options.reconnect?.initialMs ?? 50;
    const max = this.options.reconnect?.maxMs ?? 2000;
    const maxAttempts = this.options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.attempts >= maxAttempts) {
      this.closed = true;
      return;
    }
    const delay = Math.min(max, initial * 2 ** this.attempts) * (0.75 + Math.random() / 2);
    this.attempts++;
    this.options.onState?.("reconnecting", `attempt ${this.attempts} in ${Math.round(delay)} ms`);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      this.stats.reconnects++;
      this.open();
    }, delay);
  }

  private failPending(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }

  private readonly deliver = (bytes: Uint8Array, start: number, length: number, type: number, offset: number): void => {
    if (offset < this.nextOffset) {
      this.stats.duplicatesDropped++;
      return;
    }
    this.nextOffset = offset + 1;
    this.stats.records++;
    // A plain Uint8Array view: Buffer#subarray builds a FastBuffer, measurably slower per record.
    this.options.onRecord(new Uint8Array(bytes.buffer, bytes.byteOffset + start, length), offset, type);
  };

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    for (let frame = this.reader.next(); frame !== null; frame = this.reader.next()) {
      switch (frame.type) {
        case "records":
          if (!forEachRecord(frame, this.deliver)) return this.protocolError("RECORDS entry runs past its frame");
          break;
        case "welcome":
          // A client that asked for "from now" resumes from where it joined if it ever reconnects.
          if (this.nextOffset === RESUME_FROM_NOW) this.nextOffset = frame.head;
          this.welcomed = true;
          for (const resolve of this.readyWaiters.splice(0)) resolve();
          break;
        case "published": {
          const p = this.pending.get(frame.requestId);
          this.pending.delete(frame.requestId);
          p?.resolve(frame.lastOffset);
          break;
        }
        case "warn":
          this.stats.warnings++;
          this.options.onWarn?.(frame.queuedBytes, frame.limitBytes);
          break;
        case "gap":
          this.stats.gaps++;
          if (frame.to > this.nextOffset) this.nextOffset = frame.to;
          this.options.onGap?.(frame.from, frame.to);
          break;
        case "error": {
          const code =
            frame.code === ErrorCode.NOT_PRODUCER
              ? RelayErrorCode.NOT_PRODUCER
              : frame.code === ErrorCode.FULL
                ? RelayErrorCode.FULL
                : RelayErrorCode.BAD_FRAME;
          const error = new RelayError(code, frame.message);
          const p = this.pending.get(frame.requestId);
          if (p) {
            this.pending.delete(frame.requestId);
            p.reject(error);
          }
          break;
        }
        case "invalid":
          return this.protocolError(frame.reason);
        default:
          return this.protocolError(`unexpected ${frame.type} frame from the server`);
      }
    }
  }

  private protocolError(reason: string): void {
    this.options.onState?.("disconnected", `protocol error: ${reason}`);
    this.socket?.destroy();
  }
}
