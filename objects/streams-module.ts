/**
 * The Durable Streams adapter as a Topic module: the protocol's operations on this topic
 * (workers/routes/streams.ts calls them through the Topic's `ds*` RPC methods). The logic is in
 * StreamService over StreamState (objects/stream-*.ts); messages go through the topic's commit
 * queue and log, so HTTP and WebSocket share offsets and order. Readers waiting for data hold a
 * hibernatable WebSocket to the object, which this module closes when data arrives
 * (docs/decisions/008-streams-state-and-waiting.md).
 */
import { CLOSE_CODES } from "../protocol/close-codes.ts";
import { DovetailError } from "../protocol/errors.ts";
import type { CommitQueue } from "./commit-queue.ts";
import type { TopicLog } from "./log.ts";
import type { DsDeleteResult } from "../protocol/stream-rpc.ts";
import { encodeWaiterReply } from "../protocol/stream-wait.ts";
import { StreamService } from "./stream-service.ts";
import { StreamState } from "./stream-state.ts";
import { trimToInSteps } from "./storage-guard.ts";
import type { TopicModule } from "./topic-module.ts";

/** Hibernation tag of Durable Streams waiter sockets (the gateway waiting for data, not subscribers). */
export const DS_WAIT_TAG = "ds-wait";

export interface StreamsModuleOptions {
  log: TopicLog;
  commits: CommitQueue;
  sql: SqlStorage;
  /** Hibernatable sockets filed under a tag; accepting one with a tag. */
  taggedSockets(tag: string): WebSocket[];
  acceptTagged(ws: WebSocket, tag: string): void;
  pageMessages: number;
  pageBytes: number;
  /** Make the writes so far durable (a long trim commits in steps). */
  sync(): Promise<void>;
}

export class StreamsModule implements TopicModule {
  readonly #options: StreamsModuleOptions;
  #service: StreamService | undefined;
  #state: StreamState | undefined;
  /** Upper bound of open waiter sockets (null: unknown since wake); saves a lookup per commit. */
  #waiters: number | null = null;

  constructor(options: StreamsModuleOptions) {
    this.#options = options;
  }

  /** The stream service, made on first use (a topic never used as a stream reads no `ds_` table). */
  get service(): StreamService {
    if (!this.#service) {
      const o = this.#options;
      this.#state = new StreamState(o.sql);
      this.#service = new StreamService({
        log: o.log,
        state: this.#state,
        submit: (messages) => o.commits.submit(messages),
        flush: () => o.commits.flush(),
        waiting: () => o.commits.waitingMessages,
        wakeAll: () => this.#wake(true),
        pageMessages: o.pageMessages,
        pageBytes: o.pageBytes,
      });
    }
    return this.#service;
  }

  #record() {
    void this.service;
    return this.#state!.record;
  }

  /** WebSocket and /v1/topics publishes to a topic whose stream was closed over HTTP fail. */
  beforeWrite(): void {
    if (this.#record()?.closed) {
      throw new DovetailError("stream_closed", "this topic's stream was closed (Stream-Closed); it takes no more messages");
    }
  }

  /** Producer state is written with the commit that stores its messages; waiters see the data. */
  onCommit(): void {
    this.#state?.persist();
    if (this.#waiters !== 0) this.#wake(false);
  }

  /**
   * DELETE: the stream goes, and once no fork reads its data any more (protocol 4.4: a deleted
   * source with live forks is only soft-deleted) its messages go too. Offsets are kept: `head`
   * stays, so a stream created here later never reuses one, and a WebSocket reader of an old
   * offset is told `offset_trimmed`.
   */
  async delete(now: number): Promise<DsDeleteResult> {
    const existed = this.#record() !== null;
    try {
      return this.service.delete(now);
    } finally {
      // Also when the delete is refused: a stream found expired on the way is gone all the same.
      if (existed) await this.#dropDataIfGone();
    }
  }

  /** A fork of this stream was created (+1) or deleted (-1); the last fork of a deleted stream lets its data go. */
  async forkRef(delta: 1 | -1): Promise<string | null> {
    const existed = this.#record() !== null;
    const release = this.service.forkRef(delta);
    if (existed) await this.#dropDataIfGone();
    return release;
  }

  /** The stream existed before this call: if it is now gone for good, so are its messages. */
  async #dropDataIfGone(): Promise<void> {
    if (this.#record() !== null) return;
    const log = this.#options.log;
    await trimToInSteps(log, log.head, this.#options.sync);
  }

  onDelete(): void {
    this.#service = undefined;
    this.#state = undefined;
    this.#waiters = null;
  }

  /**
   * The gateway waits for data after offset `after`: the read from `after` when it has something
   * to say (data, a closed or missing stream, a refusal) is answered at once, 200 with the read
   * as the body (protocol/stream-wait.ts); else a hibernatable socket tagged as a waiter (not a
   * subscriber) is accepted. One call does what a read and then a wait did (issue 17).
   */
  acceptWaiter(after: number): Response {
    const reply = this.service.read({ offset: { kind: "at", next: after }, live: true, ifNoneMatch: null }, Date.now());
    if (!reply.wait) return new Response(encodeWaiterReply(reply), { status: 200 });
    const pair = new WebSocketPair();
    this.#options.acceptTagged(pair[1], DS_WAIT_TAG);
    pair[1].serializeAttachment({ v: 1, dsWait: after });
    this.#waiters = (this.#waiters ?? 0) + 1;
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /**
   * Close waiter sockets whose offset now has data, first sending each the read it would make
   * (one read per distinct offset), or close all of them (stream closed or deleted).
   */
  #wake(all: boolean): void {
    const waiters = this.#options.taggedSockets(DS_WAIT_TAG);
    let left = 0;
    const replies = new Map<number, string>();
    for (const ws of waiters) {
      const at = (ws.deserializeAttachment() as { dsWait?: number } | null)?.dsWait ?? -1;
      if (all || this.#options.log.head > at) {
        try {
          if (!all && at >= 0) {
            let reply = replies.get(at);
            if (reply === undefined) {
              reply = encodeWaiterReply(this.service.read({ offset: { kind: "at", next: at }, live: true, ifNoneMatch: null }, Date.now()));
              replies.set(at, reply);
            }
            ws.send(reply);
          }
          ws.close(CLOSE_CODES.normal, "wake");
        } catch {
          // Already closing.
        }
      } else left++;
    }
    this.#waiters = left;
  }
}
