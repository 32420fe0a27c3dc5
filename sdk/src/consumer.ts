/**
 * Consumer: membership of a consumer group as an async iterator of jobs, on its own socket
 * (docs/groups.md). Each job is a message handed to this member alone until it is settled:
 * `ack()` (done), `nack()` (deliver again, to anyone), `inProgress()` (more time), `term()`
 * (never again: dead letter).
 *
 * - Flow control: the topic sends at most `maxAckPending` unsettled jobs; settling makes room.
 * - Settles are batched: while a `settle` frame waits for its answer, later `ack()`s gather and
 *   leave together when it returns (at most {@link SETTLES_IN_FLIGHT} frames in flight), so a busy
 *   member sends few frames and an idle one waits for nothing. Each call resolves once the topic
 *   has stored it.
 * - Stopping: `close()` (or leaving a `for await` loop) gives back the jobs received and not yet
 *   taken, without counting them as deliveries; a job taken and not settled counts as failed.
 * - Reconnects: the topic gives a lost member's jobs to other members at once, so jobs received
 *   before a reconnect and not yet taken are dropped, and settling a job taken before it rejects
 *   with `not_held`. Delivery is at least once: a handler must tolerate a job seen twice.
 */
// Types only: this module is loaded on first use (consumer-handle.ts) and gets what it runs with
// from its caller, so bundlers can put it in a chunk of its own with no code shared with the rest.
import { TRACEPARENT_HEADER } from "../../protocol/trace-context.ts";
import { loadTracing, withTraceparent } from "./trace.ts";
import type { DovetailError } from "../../protocol/errors.ts";
import type { ClientFrame, ServerFrame, WelcomeFrame } from "../../protocol/frames.ts";
import type { GroupSettingsInput, Job as WireJob, SettleOp } from "../../protocol/groups.ts";
import type { Link, LinkConfig, LinkOwner } from "./link.ts";
import type { decodeMessage, Message } from "./message.ts";

export interface ConsumeOptions {
  /** Settings for the group if it does not exist yet (start, ackWaitMs, maxDeliver, backoffMs, ...). */
  create?: GroupSettingsInput;
  /** Most unsettled jobs this member holds (its prefetch). Default 100. */
  maxAckPending?: number;
  /** Handler form only: jobs handled at once. Default 1. */
  concurrency?: number;
  /** Ends the consumer (a waiting `next()` rejects with `aborted`). */
  signal?: AbortSignal;
  /** Let the topic hibernate while this member is idle (default true). */
  hibernate?: boolean;
}

/** One job: the message, how many times it has been delivered, and how to settle it. */
export interface Job<T = unknown> extends Message<T> {
  /** 1 the first time this group delivers the message. */
  delivery: number;
  priority: number;
  /** When the message expires for groups (ms since the epoch), if it does. */
  expiresAt?: number;
  /** Done: never delivered to this group again. */
  ack(): Promise<void>;
  /** Failed: delivered again after `delayMs` (default: the group's backoff), to any member; `reason` travels with a dead letter. */
  nack(options?: { delayMs?: number; reason?: string }): Promise<void>;
  /** Still working: the ack deadline starts again. */
  inProgress(): Promise<void>;
  /** Never deliver again: a dead letter with reason `terminated`. */
  term(reason?: string): Promise<void>;
}

/** What the handler form of `bus.consume()` runs: return to ack, throw to nack. */
export type JobHandler<T = unknown> = (job: Job<T>) => unknown | Promise<unknown>;

interface PendingSettle {
  offset: number;
  delivery: number;
  resolve: () => void;
  reject: (e: DovetailError) => void;
}

type SettleKey = `${SettleOp}:${number | ""}:${string}`;

export const DEFAULT_MEMBER_PREFETCH = 100;

/** What a session runs with, handed over by the handle that loaded it. */
export interface ConsumerDeps {
  Link: typeof Link;
  DovetailError: typeof DovetailError;
  decodeMessage: typeof decodeMessage;
}

/** Run `fn` after the current macrotask: `setImmediate` where there is one (Node), else a 0 ms timer. */
function soon(fn: () => void): void {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  if (immediate) immediate(fn);
  else setTimeout(fn, 0);
}

function encodeClientFrame(frame: ClientFrame): string {
  return JSON.stringify(frame);
}
/** Settle frames sent and not yet answered, at most; more settles wait and go together. */
export const SETTLES_IN_FLIGHT = 2;

/** The consumer itself, loaded by {@link Consumer} (consumer-handle.ts) on first use. */
export class ConsumerSession<T = unknown> implements AsyncIterableIterator<Job<T>>, LinkOwner {
  readonly topic: string;
  readonly group: string;
  readonly #link: Link;
  readonly #options: ConsumeOptions;
  readonly #onEnd: () => void;
  #buffer: Job<T>[] = [];
  #error: DovetailError | null = null;
  #done = false;
  #wake: (() => void) | null = null;
  /** Frame ids; also the socket generation jobs belong to. */
  #nextId = 1;
  #generation = 0;
  #member: string | null = null;
  /** Settles waiting for this tick's frame, by op (and delay/reason). */
  #batches = new Map<SettleKey, { op: SettleOp; delayMs?: number; reason?: string; jobs: PendingSettle[] }>();
  #flushScheduled = false;
  /** Sent settle frames waiting for `settled`. */
  #inFlight = new Map<number, { op: SettleOp; delayMs?: number; reason?: string; jobs: PendingSettle[]; generation: number }>();
  #consumeId = 0;
  #unlisten: (() => void) | null = null;
  readonly #deps: ConsumerDeps;

  /** @internal made by Consumer (consumer-handle.ts) for `bus.consume()` */
  constructor(topic: string, group: string, config: Omit<LinkConfig, "role">, options: ConsumeOptions, onEnd: () => void, deps: ConsumerDeps) {
    this.#deps = deps;
    const { Link, DovetailError } = deps;
    this.topic = topic;
    this.group = group;
    this.#options = options;
    this.#onEnd = onEnd;
    this.#link = new Link({ ...config, role: "consume" }, this);
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) {
        this.fail(new DovetailError("aborted", `consumer of ${group} on ${topic} aborted`, {}, { cause: signal.reason }));
        return;
      }
      const onAbort = () => this.fail(new DovetailError("aborted", `consumer of ${group} on ${topic} aborted`, {}, { cause: signal.reason }));
      signal.addEventListener("abort", onAbort, { once: true });
      this.#unlisten = () => signal.removeEventListener("abort", onAbort);
    }
    this.#link.start();
  }

  /** The member id the topic gave this consumer on its current socket (null while connecting). */
  get member(): string | null {
    return this.#member;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Job<T>>> {
    for (;;) {
      const job = this.#buffer.shift();
      if (job) return { value: job, done: false };
      if (this.#error) {
        const error = this.#error;
        this.#finish();
        throw error;
      }
      if (this.#done) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = null;
    }
  }

  async return(): Promise<IteratorResult<Job<T>>> {
    this.#finish();
    return { value: undefined, done: true };
  }

  /** Leave the group: jobs this member holds go to other members. */
  close(): void {
    this.#finish();
  }

  /** @internal */
  fail(error: DovetailError): void {
    if (this.#done) return;
    this.#error ??= error;
    this.#link.close();
    this.#rejectAll(error);
    this.#wake?.();
  }

  /**
   * Run `handler` for every job until the consumer ends: ack on return, nack (with the error's
   * message) on throw. With OpenTelemetry present, the handler runs in the trace of the job's
   * `traceparent` header, so what it publishes or requests continues that trace (trace.ts).
   */
  async run(handler: JobHandler<T>): Promise<void> {
    await loadTracing();
    const concurrency = Math.max(1, this.#options.concurrency ?? 1);
    const running = new Set<Promise<void>>();
    for await (const job of this) {
      const work = (async () => {
        try {
          await withTraceparent(job.headers[TRACEPARENT_HEADER], () => handler(job));
        } catch (error) {
          await job.nack({ reason: error instanceof Error ? error.message : String(error) }).catch(() => {});
          return;
        }
        await job.ack().catch(() => {}); // not_held after a reconnect: the job is someone else's now
      })();
      running.add(work);
      void work.finally(() => running.delete(work));
      if (running.size >= concurrency) await Promise.race(running);
    }
    await Promise.all(running);
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    // Leaving: the jobs received and never handed to the application go back uncounted (op
    // `release`), and so do those still on their way here (the topic knows we are leaving), so
    // stopping a consumer does not use up a delivery of what it had prefetched.
    const jobs = this.#buffer.map((j) => ({ offset: j.offset, delivery: j.delivery }));
    this.#link.send(encodeClientFrame({ type: "settle", id: this.#nextId++, op: "release", jobs }));
    this.#buffer = [];
    this.#unlisten?.();
    this.#link.close();
    this.#rejectAll(new this.#deps.DovetailError("closed", `consumer of ${this.group} closed`));
    this.#onEnd();
    this.#wake?.();
  }

  #rejectAll(error: DovetailError): void {
    for (const batch of this.#batches.values()) for (const p of batch.jobs) p.reject(error);
    this.#batches.clear();
    for (const frame of this.#inFlight.values()) for (const p of frame.jobs) p.reject(error);
    this.#inFlight.clear();
  }

  // -- settling --------------------------------------------------------------------------------

  #settle(generation: number, offset: number, delivery: number, op: SettleOp, delayMs?: number, reason?: string): Promise<void> {
    if (this.#done) return Promise.reject(new this.#deps.DovetailError("closed", `consumer of ${this.group} closed`));
    if (generation !== this.#generation) {
      return Promise.reject(
        new this.#deps.DovetailError("not_held", `offset ${offset} was received before a reconnect; the group has given it to another member`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const key: SettleKey = `${op}:${delayMs ?? ""}:${reason ?? ""}`;
      let batch = this.#batches.get(key);
      if (!batch) {
        batch = { op, jobs: [] };
        if (delayMs !== undefined) batch.delayMs = delayMs;
        if (reason !== undefined) batch.reason = reason;
        this.#batches.set(key, batch);
      }
      batch.jobs.push({ offset, delivery, resolve, reject });
      this.#scheduleFlush();
    });
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#batches.size === 0 || this.#inFlight.size >= SETTLES_IN_FLIGHT) return;
    this.#flushScheduled = true;
    // A macrotask, not a microtask: every ack made while this turn's jobs are handled (a jobs
    // frame carries many) joins one frame. A microtask sent the first acks alone (measured:
    // 603 frames for 20,000 acks, two of every three with one ack; bench/probe/groups-profile.ts).
    soon(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batches = [...this.#batches.values()];
    this.#batches.clear();
    for (const batch of batches) this.#sendSettle(batch, batch.jobs);
  }

  #sendSettle(batch: { op: SettleOp; delayMs?: number; reason?: string }, jobs: PendingSettle[]): void {
    const id = this.#nextId++;
    this.#inFlight.set(id, { ...batch, jobs, generation: this.#generation });
    const frame = { type: "settle" as const, id, op: batch.op, jobs: jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })) };
    this.#link.send(
      encodeClientFrame({
        ...frame,
        ...(batch.delayMs !== undefined ? { delayMs: batch.delayMs } : {}),
        ...(batch.reason !== undefined ? { reason: batch.reason } : {}),
      }),
    );
  }

  #job(wire: WireJob, generation: number): Job<T> {
    const message = this.#deps.decodeMessage(wire) as Message<T>;
    const { offset, delivery } = wire;
    const job: Job<T> = {
      ...message,
      delivery,
      priority: wire.priority ?? 0,
      ack: () => this.#settle(generation, offset, delivery, "ack"),
      nack: (options = {}) => this.#settle(generation, offset, delivery, "nack", options.delayMs, options.reason),
      inProgress: () => this.#settle(generation, offset, delivery, "progress"),
      term: (reason?: string) => this.#settle(generation, offset, delivery, "term", undefined, reason),
    };
    if (wire.expiresAt !== undefined) job.expiresAt = wire.expiresAt;
    return job;
  }

  // -- LinkOwner ------------------------------------------------------------------------------

  onReady(_welcome: WelcomeFrame): void {
    // A new socket is a new member: what the old one held is someone else's now.
    this.#generation++;
    this.#buffer = [];
    this.#member = null;
    const lost = new this.#deps.DovetailError("not_held", "the connection was lost before the topic confirmed this settle; the jobs go to other members");
    for (const frame of this.#inFlight.values()) for (const p of frame.jobs) p.reject(lost);
    this.#inFlight.clear();
    for (const batch of this.#batches.values()) for (const p of batch.jobs) p.reject(lost);
    this.#batches.clear();
    this.#consumeId = this.#nextId++;
    const frame = {
      type: "consume" as const,
      id: this.#consumeId,
      group: this.group,
      maxAckPending: this.#options.maxAckPending ?? DEFAULT_MEMBER_PREFETCH,
      ...(this.#options.create ? { create: this.#options.create } : {}),
    };
    this.#link.send(encodeClientFrame(frame));
  }

  onFrame(frame: Exclude<ServerFrame, WelcomeFrame>): void {
    switch (frame.type) {
      case "consuming":
        if (frame.id === this.#consumeId) this.#member = frame.member;
        return;
      case "jobs":
        for (const wire of frame.jobs) this.#buffer.push(this.#job(wire, this.#generation));
        this.#wake?.();
        return;
      case "settled": {
        const sent = this.#inFlight.get(frame.id);
        this.#inFlight.delete(frame.id);
        for (const p of sent?.jobs ?? []) p.resolve();
        this.#scheduleFlush();
        return;
      }
      case "error": {
        if (frame.id === this.#consumeId) {
          // The group refused us (forbidden, bad settings, group deleted): no retry can help.
          this.fail(this.#deps.DovetailError.fromWire(frame));
          return;
        }
        const sent = frame.id === undefined ? undefined : this.#inFlight.get(frame.id);
        if (!sent) return;
        this.#inFlight.delete(frame.id!);
        const error = this.#deps.DovetailError.fromWire(frame);
        if (error.code === "not_held" && sent.jobs.length > 1 && sent.generation === this.#generation) {
          // One job of the batch was taken back (its ack wait ran out): settle the others one by one.
          for (const p of sent.jobs) this.#sendSettle(sent, [p]);
          return;
        }
        for (const p of sent.jobs) p.reject(error);
        this.#scheduleFlush();
        return;
      }
      default:
        return;
    }
  }

  onDown(_error: DovetailError): void {
    this.#member = null;
  }

  onFailed(error: DovetailError): void {
    this.fail(error);
  }
}
