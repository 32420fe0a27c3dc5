/**
 * Request/reply in the SDK (docs/requests.md): the requester behind `bus.request()` and the
 * responder behind `bus.serve()`, each on its own plain socket to the topic.
 *
 * - A {@link Requester} keeps one socket per topic; each request is a `request` frame with an id
 *   the socket never uses again, so a reply or error that arrives after the caller stopped waiting
 *   finds nobody and is dropped. A request not yet sent when the socket drops is sent on the next
 *   one; a request already sent is rejected with `closed` (the topic forgot it with the socket,
 *   and it may have been handled: it is not sent twice).
 * - A {@link Server} sends `serve` and runs the handler for each `request` frame, replying
 *   with what it returns or the error it throws. With `durable`, the socket first joins the
 *   responders' consumer group (`consume`), and each job carrying a request id is answered the
 *   same way, then acked; a job that is not a request is terminated (it goes to the dead-letter
 *   topic). After a reconnect it serves (and consumes) again.
 */
// Types only: this module is loaded on first use (`Bus.#loadRequests()` in client.ts) and gets what
// it runs with from its caller, so bundlers can put it in a chunk of its own with no code shared
// with the rest: a browser app that only publishes and subscribes does not carry it (decision 025).
import { TRACEPARENT_HEADER } from "../../protocol/trace-context.ts";
import { currentTraceparent, loadTracing, withTraceparent } from "./trace.ts";
import type { DovetailError } from "../../protocol/errors.ts";
import type { ErrorFrame, ServerFrame, WelcomeFrame } from "../../protocol/frames.ts";
import type { GroupSettingsInput, groupNameProblem, Job as WireJob } from "../../protocol/groups.ts";
import type { IncomingRequestFrame } from "../../protocol/requests.ts";
import type { Link, LinkConfig, LinkOwner } from "./link.ts";

/** Longest wait the topic keeps a request (`MAX_REQUEST_TIMEOUT_MS` in protocol/requests.ts). */
const MAX_SERVER_TIMEOUT_MS = 300_000;
/** Header of a durable request naming its id (`REQUEST_HEADERS.id` in protocol/requests.ts). */
const REQUEST_ID_HEADER = "dovetail-request-id";

export interface RequestOptions {
  /** Stop waiting after this many milliseconds (`timeout`); the topic keeps a request at most 300 s. Default: the bus's (30 s). */
  timeoutMs?: number;
  /** Stop waiting when this aborts (`aborted`); a reply that comes later is dropped. */
  signal?: AbortSignal;
  /** Store the request in the topic, handed out by the responders' consumer group: it survives a responder's crash. */
  durable?: boolean;
  /** The W3C traceparent the request carries. Default: the active OpenTelemetry span's, or a new trace (docs/observability.md). */
  traceparent?: string;
}

/** What a handler gets beside the request's data. */
export interface RequestContext {
  /** The id the topic gave the request. */
  requestId: string;
  /** True for a durable request (handed out by the group; it may come again after a crash). */
  durable: boolean;
  /** How long the requester still waits, in ms, when the request arrived. */
  timeoutMs: number;
  /**
   * The requester's W3C traceparent, when it sent one. With OpenTelemetry present the handler runs
   * in that trace already; without, pass it on (`headers: { traceparent }`) to continue it.
   */
  traceparent?: string;
}

/** Answers a request: its return value is the reply; what it throws goes back as `remote_error`. */
export type RequestHandler<Q = unknown, R = unknown> = (data: Q, context: RequestContext) => R | Promise<R>;

export interface ServeOptions {
  /** The group this responder joins: each request goes to one member of each serving group. Default `default`. */
  group?: string;
  /** Also answer durable requests: join the consumer group `group` on this socket (needs the consume scope). */
  durable?: boolean;
  /** Durable: settings of the group if it does not exist yet. Default `{ start: "latest" }`. */
  create?: GroupSettingsInput;
  /** Durable: jobs this member holds at once (its prefetch). Default 100. */
  maxAckPending?: number;
  /** Ends the responder (and `bus.serve()`'s wait, with `aborted`). */
  signal?: AbortSignal;
  /** How long `bus.serve()` waits for the topic to count this responder (`timeout`, and the responder is closed). Default: the bus's (30 s). */
  timeoutMs?: number;
}

/** What this module runs with, handed over by the bus that loaded it. */
export interface RequestsDeps {
  Link: typeof Link;
  DovetailError: typeof DovetailError;
  groupNameProblem: typeof groupNameProblem;
}

/** The bus's requesters (one socket per topic) and responders; `close()` ends them all. */
export class Requests {
  readonly #config: (topic: string) => Omit<LinkConfig, "role">;
  readonly #deps: RequestsDeps;
  readonly #requesters = new Map<string, Requester>();
  readonly #servers = new Set<Server>();
  #closed = false;

  constructor(config: (topic: string) => Omit<LinkConfig, "role">, deps: RequestsDeps) {
    this.#config = config;
    this.#deps = deps;
  }

  async request(topic: string, data: unknown, timeoutMs: number, options: RequestOptions): Promise<unknown> {
    await loadTracing(); // the request's traceparent may be the active OpenTelemetry span's
    if (this.#closed) throw new this.#deps.DovetailError("closed", "the bus is closed");
    let requester = this.#requesters.get(topic);
    if (!requester || requester.failed) {
      requester = new Requester(topic, this.#config(topic), this.#deps);
      this.#requesters.set(topic, requester);
    }
    return requester.request(data, timeoutMs, options);
  }

  /** A responder, once the topic counts it; rejects with what refused it (`forbidden`, `conflict`, ...). */
  async serve(topic: string, handler: RequestHandler, options: ServeOptions, timeoutMs: number): Promise<Server> {
    const { DovetailError, groupNameProblem } = this.#deps;
    if (this.#closed) throw new DovetailError("closed", "the bus is closed");
    const problem = options.group === undefined ? null : groupNameProblem(options.group);
    if (problem) throw new DovetailError("invalid_field", `group: ${problem}`);
    const server: Server = new Server(topic, this.#config(topic), handler, options, () => this.#servers.delete(server), this.#deps);
    this.#servers.add(server);
    let timer: ReturnType<typeof setTimeout> | null = null;
    const timedOut = new Promise<never>((_, reject) => {
      if (timeoutMs === Infinity) return;
      timer = setTimeout(() => reject(new DovetailError("timeout", `serve ${topic}: not serving within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([server.ready(), timedOut]);
    } catch (error) {
      server.close();
      if (options.signal?.aborted) throw new DovetailError("aborted", `serve ${topic}: aborted by the caller's signal`, {}, { cause: options.signal.reason });
      throw error;
    } finally {
      if (timer) clearTimeout(timer);
    }
    return server;
  }

  close(): void {
    this.#closed = true;
    for (const r of this.#requesters.values()) r.close();
    this.#requesters.clear();
    for (const s of [...this.#servers]) s.close();
  }
}

/** JSON text as the topic wants it: a raw U+FFFD is escaped (docs/protocol.md, "Text frames"). */
function frameText(frame: Record<string, unknown>): string {
  return JSON.stringify(frame).replace(/\uFFFD/g, "\\ufffd");
}

/** Most items, and about most characters, in one batch frame (MAX_BATCH_REQUESTS; well under a runtime's 1 MiB frame). */
const BATCH_MAX_ITEMS = 1000;
const BATCH_MAX_CHARS = 512 * 1024;

/**
 * Items (JSON object texts) as frames of type `type`: one item as the single form (`{"type":…,` +
 * its fields), more as the batch form (`{"type":…,"<list>":[…]}`), cut at BATCH_MAX_ITEMS items
 * or about BATCH_MAX_CHARS characters.
 */
function batchFrames(type: string, list: string, items: string[]): string[] {
  const frames: string[] = [];
  let start = 0;
  while (start < items.length) {
    let end = start;
    let chars = 0;
    while (end < items.length && end - start < BATCH_MAX_ITEMS && (end === start || chars + items[end]!.length <= BATCH_MAX_CHARS))
      chars += items[end++]!.length;
    frames.push(end - start === 1 ? `{"type":"${type}",${items[start]!.slice(1)}` : `{"type":"${type}","${list}":[${items.slice(start, end).join(",")}]}`);
    start = end;
  }
  return frames;
}

interface PendingRequest {
  text: string;
  sent: boolean;
  resolve: (data: unknown) => void;
  reject: (error: DovetailError) => void;
}

/** The requesting side of one topic: one socket, many requests in flight. */
export class Requester implements LinkOwner {
  readonly #link: Link;
  readonly #deps: RequestsDeps;
  readonly #topic: string;
  readonly #pending = new Map<number, PendingRequest>();
  #nextId = 1;
  #sendScheduled = false;

  constructor(topic: string, config: Omit<LinkConfig, "role">, deps: RequestsDeps) {
    this.#deps = deps;
    this.#topic = topic;
    this.#link = new deps.Link({ ...config, role: "publish" }, this);
  }

  get failed(): DovetailError | null {
    return this.#link.failed;
  }

  /** Send `data` and wait for the reply, at most `timeoutMs` (Infinity: the topic's 300 s). */
  request(data: unknown, timeoutMs: number, options: RequestOptions): Promise<unknown> {
    const { DovetailError } = this.#deps;
    const what = `request on ${this.#topic}`;
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new DovetailError("aborted", `${what}: aborted by the caller's signal`, {}, { cause: signal.reason }));
    if (this.#link.failed) return Promise.reject(this.#link.failed);
    const id = this.#nextId++;
    const serverTimeoutMs = Math.max(1, Math.min(Math.ceil(timeoutMs), MAX_SERVER_TIMEOUT_MS));
    const frame: Record<string, unknown> = { id, data: data ?? null, timeoutMs: serverTimeoutMs, traceparent: options.traceparent ?? currentTraceparent() };
    if (options.durable) frame.durable = true;
    return new Promise<unknown>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const end = () => {
        this.#pending.delete(id);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        end();
        reject(new DovetailError("aborted", `${what}: aborted by the caller's signal; a reply that comes later is dropped`, {}, { cause: signal?.reason }));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs < MAX_SERVER_TIMEOUT_MS) {
        timer = setTimeout(() => {
          end();
          reject(new DovetailError("timeout", `${what}: no reply within ${timeoutMs} ms; a reply that comes later is dropped`));
        }, timeoutMs);
      }
      const pending: PendingRequest = {
        text: frameText(frame),
        sent: false,
        resolve: (value) => {
          end();
          resolve(value);
        },
        reject: (error) => {
          end();
          reject(error);
        },
      };
      this.#pending.set(id, pending);
      this.#scheduleSend();
      this.#link.start();
    });
  }

  /** Requests of one tick leave together, in one frame (the topic handles a frame per runtime event). */
  #scheduleSend(): void {
    if (this.#sendScheduled) return;
    this.#sendScheduled = true;
    queueMicrotask(() => {
      this.#sendScheduled = false;
      this.#sendUnsent();
    });
  }

  #sendUnsent(): void {
    if (!this.#link.ready) return; // onReady sends them
    const unsent = [...this.#pending.values()].filter((p) => !p.sent);
    if (unsent.length === 0) return;
    for (const frame of batchFrames(
      "request",
      "requests",
      unsent.map((p) => p.text),
    ))
      if (!this.#link.send(frame)) return;
    for (const p of unsent) p.sent = true;
  }

  onReady(_welcome: WelcomeFrame): void {
    this.#sendUnsent();
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    if (frame.type === "reply") this.#pending.get(frame.id)?.resolve(frame.data);
    else if (frame.type === "replies" && Array.isArray(frame.replies)) {
      // parseServerFrame leaves request/reply frames to this module to check (protocol/frames.ts).
      for (const r of frame.replies) {
        const p = this.#pending.get(r.id);
        if (!p) continue; // late: dropped
        if ("error" in r) p.reject(this.#deps.DovetailError.fromWire(r.error));
        else p.resolve(r.data);
      }
    } else if (frame.type === "error" && frame.id !== undefined) this.#pending.get(frame.id)?.reject(this.#deps.DovetailError.fromWire(frame));
  }

  onDown(error: DovetailError): void {
    const { DovetailError } = this.#deps;
    for (const p of [...this.#pending.values()]) {
      if (!p.sent) continue;
      p.reject(
        new DovetailError(
          "closed",
          `the connection to ${this.#topic} was lost while waiting for the reply; the request may have been handled`,
          {},
          { cause: error },
        ),
      );
    }
  }

  onFailed(error: DovetailError): void {
    for (const p of [...this.#pending.values()]) p.reject(error);
  }

  close(): void {
    this.onFailed(new this.#deps.DovetailError("closed", "the bus is closed"));
    this.#link.close();
  }
}

/**
 * A responder: what `bus.serve()` resolves with. It serves until `close()` (or its signal, or the
 * bus closing); `done` resolves then, or rejects with what ended it (a connection given up).
 *
 * @example
 * const server = await bus.serve("math.add", ({ a, b }: { a: number; b: number }) => a + b, { group: "adders" });
 * server.close();
 */
export class Server<Q = unknown, R = unknown> implements LinkOwner {
  readonly #link: Link;
  readonly #deps: RequestsDeps;
  readonly #topic: string;
  readonly #group: string;
  readonly #handler: RequestHandler<Q, R>;
  readonly #options: ServeOptions;
  readonly #onEnd: () => void;
  #nextId = 1;
  #serveId = 0;
  #consumeId = 0;
  #responder: string | null = null;
  #closed = false;
  #readyWaiters: { resolve: () => void; reject: (e: DovetailError) => void }[] = [];
  /** Replies of this tick, sent together. */
  #replies: string[] = [];
  #error: DovetailError | null = null;
  readonly done: Promise<void>;
  #resolveDone!: () => void;
  #rejectDone!: (e: DovetailError) => void;

  /** @internal made by `Requests.serve()` for `bus.serve()` */
  constructor(topic: string, config: Omit<LinkConfig, "role">, handler: RequestHandler<Q, R>, options: ServeOptions, onEnd: () => void, deps: RequestsDeps) {
    this.#deps = deps;
    this.#topic = topic;
    this.#group = options.group ?? "default";
    this.#handler = handler;
    this.#options = options;
    this.#onEnd = onEnd;
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    this.done.catch(() => undefined); // observed through ready() or done by the caller
    this.#link = new deps.Link({ ...config, role: "subscribe" }, this);
    const signal = options.signal;
    if (signal?.aborted) {
      this.close();
      return;
    }
    signal?.addEventListener("abort", () => this.close(), { once: true });
    this.#link.start();
  }

  /** The id the topic gave this responder on its current socket (null while connecting). */
  get responder(): string | null {
    return this.#responder;
  }

  /** Resolves once the topic counts this socket as a responder again (after a reconnect, requests sent before that find nobody). */
  ready(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#responder !== null) return Promise.resolve();
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Stop serving: the socket closes; requests it holds and has not answered get `responder_gone` (durable ones go to another member). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link.close();
    this.#onEnd();
    this.#fail(new this.#deps.DovetailError("closed", `the responder on ${this.#topic} was closed`));
    this.#resolveDone();
  }

  onReady(_welcome: WelcomeFrame): void {
    this.#responder = null;
    if (this.#options.durable) {
      this.#consumeId = this.#nextId++;
      const create = this.#options.create ?? { start: "latest" };
      const frame: Record<string, unknown> = { type: "consume", id: this.#consumeId, group: this.#group, create };
      if (this.#options.maxAckPending !== undefined) frame.maxAckPending = this.#options.maxAckPending;
      this.#link.send(frameText(frame));
    } else this.#sendServe();
  }

  #sendServe(): void {
    this.#serveId = this.#nextId++;
    const frame: Record<string, unknown> = { type: "serve", id: this.#serveId, group: this.#group };
    if (this.#options.durable) frame.durable = true;
    this.#link.send(frameText(frame));
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    switch (frame.type) {
      // parseServerFrame leaves request/reply frames to this module to check (protocol/frames.ts).
      case "request":
        if (typeof frame.requestId === "string") void this.#answer(frame);
        return;
      case "requests":
        if (!Array.isArray(frame.requests)) return;
        for (const r of frame.requests) if (typeof r?.requestId === "string") void this.#answer({ type: "request", ...r });
        return;
      case "jobs":
        for (const job of frame.jobs) void this.#answerJob(job);
        return;
      case "consuming":
        if (frame.id === this.#consumeId) this.#sendServe();
        return;
      case "serving":
        if (frame.id !== this.#serveId || typeof frame.responder !== "string") return;
        this.#responder = frame.responder;
        for (const w of this.#readyWaiters.splice(0)) w.resolve();
        return;
      case "error":
        this.#onError(frame);
        return;
      default:
    }
  }

  /** A refused `serve` or `consume` ends the responder; other errors (a late settle) do not. */
  #onError(frame: ErrorFrame): void {
    if (frame.id === undefined || (frame.id !== this.#serveId && frame.id !== this.#consumeId)) return;
    const error = this.#deps.DovetailError.fromWire(frame);
    this.#closed = true;
    this.#link.close();
    this.#onEnd();
    this.#fail(error);
    this.#rejectDone(error);
  }

  #fail(error: DovetailError): void {
    this.#error ??= error;
    for (const w of this.#readyWaiters.splice(0)) w.reject(error);
  }

  onDown(_error: DovetailError): void {
    this.#responder = null;
  }

  onFailed(error: DovetailError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onEnd();
    this.#fail(error);
    this.#rejectDone(error);
  }

  /** Run the handler; the reply's text as a batch item (`{"requestId":…}`). */
  async #run(requestId: string, data: unknown, context: RequestContext): Promise<string> {
    let reply: Record<string, unknown>;
    try {
      const result = await withTraceparent(context.traceparent, () => this.#handler(data as Q, context));
      reply = { requestId, data: result ?? null };
    } catch (error) {
      const e = error as { message?: unknown; code?: unknown } | null;
      const message = typeof e?.message === "string" ? e.message : String(error);
      const remote: Record<string, unknown> = { message: message.slice(0, 4096) };
      if (typeof e?.code === "string" && e.code.length > 0) remote.code = e.code.slice(0, 128);
      reply = { requestId, error: remote };
    }
    try {
      return frameText(reply);
    } catch (error) {
      // A result JSON cannot hold (a cycle, a BigInt): the requester hears why.
      return frameText({ requestId, error: { message: `the reply could not be encoded as JSON: ${String(error)}` } });
    }
  }

  /** A plain request: its reply leaves with the others of the same tick, in one frame. */
  async #answer(frame: IncomingRequestFrame): Promise<void> {
    const context: RequestContext = { requestId: frame.requestId, durable: false, timeoutMs: frame.timeoutMs };
    if (frame.traceparent !== undefined) context.traceparent = frame.traceparent;
    const item = await this.#run(frame.requestId, frame.data, context);
    this.#replies.push(item);
    if (this.#replies.length > 1) return;
    queueMicrotask(() => {
      const items = this.#replies;
      this.#replies = [];
      for (const f of batchFrames("reply", "replies", items)) this.#link.send(f);
    });
  }

  async #answerJob(job: WireJob): Promise<void> {
    const requestId = job.headers?.[REQUEST_ID_HEADER];
    const ref = [{ offset: job.offset, delivery: job.delivery }];
    if (requestId === undefined) {
      this.#link.send(frameText({ type: "settle", id: this.#nextId++, op: "term", jobs: ref, reason: "not a request (no dovetail-request-id header)" }));
      return;
    }
    const deadline = Number(job.headers?.["dovetail-request-deadline"]);
    const timeoutMs = Number.isFinite(deadline) ? Math.max(0, deadline - Date.now()) : 0;
    const context: RequestContext = { requestId, durable: true, timeoutMs };
    const traceparent = job.headers?.[TRACEPARENT_HEADER];
    if (traceparent !== undefined) context.traceparent = traceparent;
    const item = await this.#run(requestId, job.data ?? null, context);
    this.#link.send(`{"type":"reply",${item.slice(1)}`); // at once, before the ack
    // Acked once the reply is sent: a crash before this hands the request to another member.
    this.#link.send(frameText({ type: "settle", id: this.#nextId++, op: "ack", jobs: ref }));
  }
}
