/**
 * CommitQueue: group commit for a topic.
 *
 * Publishes arriving in separate events (WebSocket frames, RPC calls) wait here for a moment and
 * are written together in one SQLite transaction; each publisher's promise resolves with its
 * offsets only after that transaction. One write per event commits on its own and tops out near
 * a thousand messages a second under workerd; one transaction per flush lifts that limit
 * (docs/decisions/004-group-commit.md).
 *
 * The topic's durability level (protocol/durability.ts) decides the order of three things in a
 * flush: `sync` writes, then hands the batch to fan-out (whose frames the output gate holds until
 * the write is confirmed) and acks; `async` hands the batch to fan-out first, so its frames leave
 * before the write starts, then writes and acks; `memory` writes nothing and acks at once.
 *
 * It also deduplicates idempotent producers: a (producer id, seq) already stored, or waiting
 * here, is answered with the offsets of the first copy instead of being stored again.
 */
import { DovetailError } from "../protocol/errors.ts";
import type { Durability } from "../protocol/durability.ts";
import type { ProducerStamp } from "../protocol/frames.ts";
import type { AppendResult, PreparedMessage, TopicLog } from "./log.ts";
import { knownError } from "./rpc-result.ts";
import { storageGuard } from "./storage-guard.ts";
import type { CommitObserver } from "./topic-metrics.ts";

export interface PublishResult {
  offset: number;
  count: number;
  /** True when this was a resend of a batch the topic already had. */
  duplicate?: boolean;
}

/** What the queue hands to fan-out after each commit: consecutive messages from `first`. */
export interface CommittedBatch {
  first: number;
  time: number;
  bodies: string[];
  /** `async` durability: fan-out was handed this batch before the write (CommitQueueOptions.deliverEarly). */
  deliveredEarly?: boolean;
}

export interface CommitQueueOptions {
  /** How long the first waiting publish may wait for company before the flush. */
  flushDelayMs: number;
  /**
   * Extra wait for company, asked at each flush (0 when absent). Every commit costs one frame per
   * caught-up subscriber, so a topic with many subscribers commits less often and sends bigger
   * frames (decision 004).
   */
  extraLingerMs?: () => number;
  /** Flush at once when this many messages wait (bounds memory under a burst). */
  maxPendingMessages: number;
  /** Resolves when everything written so far is durable. */
  durable?: () => Promise<void>;
  /** Told when each commit is durable, and when each publish of it was submitted (objects/topic-metrics.ts). */
  observer?: CommitObserver;
  /** The topic's durability level, asked at each flush (`sync` when absent). */
  durability?: () => Durability;
  /** `async` durability: deliver a batch to subscribers before it is written. */
  deliverEarly?: (batch: CommittedBatch) => void;
  /** `async` durability: the write of a batch delivered early failed; its offsets will be given again. */
  lostEarly?: (error: DovetailError) => void;
}

interface Pending {
  messages: PreparedMessage[];
  /** When it was submitted (ms since the epoch). */
  at: number;
  producer?: ProducerStamp;
  resolve: (r: PublishResult) => void;
  reject: (e: unknown) => void;
}

/**
 * A publish that finds the topic idle this long after its last commit is committed at once
 * instead of waiting for the flush timer (docs/decisions/004-group-commit.md).
 */
export const IDLE_FLUSH_MS = 2;

const producerKey = (id: string, seq: number) => `${id}\u0000${seq}`;

/** Stored text of a batch's messages (UTF-16 units: bytes for ASCII), for the storage guard. */
function bodyBytes(batch: readonly Pending[]): number {
  let n = 0;
  for (const p of batch) for (const m of p.messages) n += m.body.length;
  return n;
}

/** A commit is durable: its duration, and each of its publishes' (submit to durable). */
function observeCommit(observer: CommitObserver, batch: readonly Pending[], flushedAt: number): void {
  const now = Date.now();
  observer.committed(flushedAt, now);
  for (const p of batch) observer.published(p.at, now);
}

export class CommitQueue {
  readonly #log: TopicLog;
  readonly #onCommit: (batch: CommittedBatch) => void;
  readonly #options: CommitQueueOptions;
  #pending: Pending[] = [];
  #pendingMessages = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** When the last flush ran (ms since the epoch). */
  #lastCommitAt = 0;
  /** Commits written but not yet confirmed durable. */
  #inFlight = 0;
  /** Highest sequence accepted per producer while its batch waits here; the log knows the rest. */
  readonly #waitingSeq = new Map<string, number>();
  /** Promises of waiting producer batches, so a resend of one that has not committed yet can share it. */
  readonly #waitingBatches = new Map<string, Promise<PublishResult>>();

  constructor(log: TopicLog, onCommit: (batch: CommittedBatch) => void, options: CommitQueueOptions) {
    this.#log = log;
    this.#onCommit = onCommit;
    this.#options = options;
  }

  get waitingMessages(): number {
    return this.#pendingMessages;
  }

  /**
   * Queue messages for the next commit. Resolves with their offsets once durable. Throws
   * `sequence_gap` when a producer skips a sequence number, `invalid_field` when a resend is
   * older than the dedup window.
   */
  submit(messages: PreparedMessage[], producer?: ProducerStamp): Promise<PublishResult> {
    if (producer) {
      const earlier = this.#checkProducer(producer);
      if (earlier) return earlier;
    }
    const promise = new Promise<PublishResult>((resolve, reject) => {
      this.#pending.push({ messages, at: Date.now(), producer, resolve, reject });
    });
    if (producer) {
      this.#waitingSeq.set(producer.id, producer.seq);
      this.#waitingBatches.set(producerKey(producer.id, producer.seq), promise);
    }
    this.#pendingMessages += messages.length;
    // A publish arriving alone commits now when no commit is on its way to disk (or none was
    // made for IDLE_FLUSH_MS): waiting a turn for company costs a timer (about 1 ms in workerd,
    // measured) and no one else is coming. Under load a commit is usually in flight, so
    // publishes wait for the timer and commit together.
    if (this.#options.durability?.() === "memory") {
      this.#scheduleMemoryFlush();
      return promise;
    }
    const linger = this.#options.extraLingerMs?.() ?? 0;
    const idle = this.#inFlight === 0 || Date.now() - this.#lastCommitAt >= IDLE_FLUSH_MS + linger;
    const alone = this.#pending.length === 1 && idle;
    if (alone || this.#pendingMessages >= this.#options.maxPendingMessages) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#options.flushDelayMs + linger);
    return promise;
  }

  /**
   * When a memory topic flushes. It writes nothing, so only fan-out gains from company: every
   * flush is a frame per subscriber and an ack per publisher. The rule is the stored topics' rule
   * without the commit in flight: a publish is flushed at once when the topic has not flushed for
   * IDLE_FLUSH_MS (plus the subscribers' linger), else with the others on the flush timer.
   * Measured (decision 035): flushing a publish at once whenever the clock had moved since the
   * last flush let 10 publishers × 10 subscribers per topic fall behind by seconds (a frame per
   * publish per subscriber), and did not lower the latency at 1,000 msg/s.
   */
  #scheduleMemoryFlush(): void {
    const linger = this.#options.extraLingerMs?.() ?? 0;
    if (Date.now() - this.#lastCommitAt >= IDLE_FLUSH_MS + linger || this.#pendingMessages >= this.#options.maxPendingMessages) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#options.flushDelayMs + linger);
  }

  /** Returns the answer for a resend, throws for a gap, or returns null for a new batch. */
  #checkProducer(p: ProducerStamp): Promise<PublishResult> | null {
    const last = this.#waitingSeq.get(p.id) ?? this.#log.lastProducerSeq(p.id);
    if (last === null || p.seq === last + 1) return null;
    if (p.seq > last + 1) {
      throw new DovetailError("sequence_gap", `producer ${p.id} sent seq ${p.seq}; expected ${last + 1}`, { expected: last + 1 });
    }
    const waiting = this.#waitingBatches.get(producerKey(p.id, p.seq));
    if (waiting) return waiting.then((r) => ({ ...r, duplicate: true }));
    const stored = this.#log.producerBatch(p.id, p.seq);
    if (stored) return Promise.resolve({ ...stored, duplicate: true });
    throw new DovetailError(
      "invalid_field",
      `producer ${p.id} seq ${p.seq} is older than the deduplication window; it was stored before, not storing it again`,
    );
  }

  /** Commit everything waiting, in one transaction. */
  flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#pending;
    if (batch.length === 0) return;
    const flushedAt = Date.now();
    this.#lastCommitAt = flushedAt;
    this.#pending = [];
    this.#pendingMessages = 0;
    this.#waitingSeq.clear();
    this.#waitingBatches.clear();
    const { durable, observer, deliverEarly } = this.#options;
    const level = this.#options.durability?.() ?? "sync";
    const bodies: string[] = [];
    for (const p of batch) for (const m of p.messages) bodies.push(m.body);
    // The stamp appendGroups gives the batch, known before the write for an early delivery.
    const time = Math.max(Date.now(), this.#log.lastTime);
    const early = level === "async" && deliverEarly !== undefined;
    // Sent before the write starts, so the output gate does not hold these frames for it.
    if (early) deliverEarly({ first: this.#log.head, time, bodies, deliveredEarly: true });
    let results: AppendResult[];
    try {
      // The local bus keeps a reserve of disk space: new messages are refused before SQLite
      // fails to grow its files, which would reset the topic (objects/storage-guard.ts).
      if (level !== "memory") storageGuard?.admit(bodyBytes(batch));
      results = this.#log.appendGroups(batch, time);
    } catch (error) {
      // Nothing of the batch was stored (one transaction) and the log's head did not move, so
      // every publisher gets the refusal and may retry; a full storage is `storage_full`.
      const failure = knownError(error) ?? new DovetailError("internal", "the topic failed to store the batch", {}, { cause: error });
      for (const p of batch) p.reject(failure);
      if (early) this.#options.lostEarly?.(failure);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]!;
      batch[i]!.resolve({ offset: r.offset, count: r.count });
    }
    this.#onCommit({ first: results[0]!.offset, time: results[0]!.time, bodies, ...(early ? { deliveredEarly: true } : {}) });
    if (durable && level !== "memory") {
      this.#inFlight++;
      void durable().finally(() => {
        this.#inFlight--;
        if (observer) observeCommit(observer, batch, flushedAt);
      });
    } else if (observer) observeCommit(observer, batch, flushedAt);
  }
}
