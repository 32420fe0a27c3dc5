/**
 * RequestsModule: request/reply on a topic (docs/requests.md, decision 029), a module of the
 * Topic host (objects/topic-module.ts).
 *
 * - A socket that sent `serve` is a **responder** in a group (default `default`). Each request
 *   goes to one member of every serving group, chosen round-robin within the group; the first
 *   reply wins and later ones are dropped.
 * - Requests wait in memory, keyed by an id the topic makes (random prefix + counter, never
 *   reused), each with its own timer: a reply that comes after the requester's deadline, or
 *   after it left, names an id nobody waits for any more and is dropped.
 * - Nobody serving: `no_responders` at once. The deadline passing: `timeout`. Every responder a
 *   request went to closing its socket before replying: `responder_gone` at once (the request is
 *   not handed to someone else: it may have been handled; a durable request is the way to have
 *   it handled again).
 * - A durable request is a message stored in the topic (headers `dovetail-request-id` and
 *   `dovetail-request-deadline`, `expiresAt` at the deadline); the responders' consumer group
 *   (objects/groups/) hands it to one member, hands it to another when that member's socket
 *   closes, and a `reply` from any durable responder answers it.
 *
 * Requesters are sockets (`request` frames) or RPC calls (`POST /v1/topics/{topic}/request`
 * through the gateway); both wait on the same {@link PendingRequest}.
 */
import { TRACEPARENT_HEADER } from "../../protocol/trace-context.ts";
import { DovetailError } from "../../protocol/errors.ts";
import { encodeErrorFrame, MAX_DATA_DEPTH, nestsDeeperThan, type ClientFrame, type PublishMessage } from "../../protocol/frames.ts";
import type { SocketGrant } from "../../protocol/grant.ts";
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SERVE_GROUP,
  MAX_PENDING_REQUESTS,
  REQUEST_HEADERS,
  type ReplyItem,
  type RequestItem,
  type RequestReply,
} from "../../protocol/requests.ts";
import { utf8ByteLength } from "../bytes.ts";
import { knownError } from "../rpc-result.ts";
import type { PublishResult } from "../commit-queue.ts";
import type { SocketAttachment } from "../fanout.ts";
import type { TopicModule } from "../topic-module.ts";

/** What a serving socket keeps in its attachment, so it still serves after the topic hibernates. */
export interface ResponderAttachment {
  id: string;
  group: string;
  durable: boolean;
}

/** The attachment with this module's field (kept beside the others; objects/fanout.ts persists it whole). */
type Attachment = SocketAttachment & { responder?: ResponderAttachment };

export interface RequestsHost {
  sockets: () => Iterable<[WebSocket, SocketAttachment]>;
  attachment: (ws: WebSocket) => SocketAttachment;
  persist: (ws: WebSocket) => void;
  /** Largest request or reply `data`, in bytes of its JSON text (the topic's `maxMessageBytes`). */
  maxDataBytes: () => number;
  /** Store messages in the topic (durable requests), through the topic's own publish path. */
  publish: (messages: PublishMessage[]) => Promise<PublishResult>;
}

/** The outcome a requester gets: the reply's data as JSON text, or an error. */
type Outcome = { ok: true; dataJson: string } | { ok: false; error: DovetailError };

class Responder {
  /** Requests handed to this responder and not answered yet. */
  readonly inFlight = new Set<PendingRequest>();
  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly group: string,
    readonly durable: boolean,
  ) {}
}

class PendingRequest {
  /** Responders it was handed to that may still reply (empty for a durable request). */
  readonly targets = new Set<Responder>();
  timer: ReturnType<typeof setTimeout> | null = null;
  constructor(
    readonly requestId: string,
    readonly durable: boolean,
    /** The requester's socket (null for an RPC requester). */
    readonly requester: WebSocket | null,
    readonly answer: (outcome: Outcome) => void,
  ) {}
}

/** A serving group: its members in join order, and whose turn is next. */
interface ServeGroup {
  members: Responder[];
  next: number;
}

function randomPart(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return [...bytes].map((b) => b.toString(36).padStart(2, "0")).join("");
}

export class RequestsModule implements TopicModule {
  readonly frameTypes = ["serve", "request", "reply"] as const;
  readonly #host: RequestsHost;
  readonly #responders = new Map<WebSocket, Responder>();
  readonly #groups = new Map<string, ServeGroup>();
  readonly #pending = new Map<string, PendingRequest>();
  /** What this turn sends, per socket: request items to responders, reply items to batch requesters (flushed in a microtask). */
  readonly #toResponders = new Map<WebSocket, string[]>();
  readonly #toRequesters = new Map<WebSocket, string[]>();
  #flushScheduled = false;
  /** Durable responders, counted: a durable request with none is refused with `no_responders`. */
  #durableResponders = 0;
  /** Request ids: a prefix per object life and a counter, so an id is never used twice. */
  readonly #idPrefix = `r${randomPart()}`;
  #counter = 0;

  constructor(host: RequestsHost) {
    this.#host = host;
    // After a wake: sockets that served before hibernation serve again (requests in flight were in memory and are gone).
    for (const [ws, a] of host.sockets()) {
      const r = (a as Attachment).responder;
      if (r) this.#addResponder(new Responder(r.id, ws, r.group, r.durable));
    }
  }

  /** Requests waiting for a reply (tests, stats). */
  get pendingCount(): number {
    return this.#pending.size;
  }

  // -------------------------------------------------------------------------------------------
  // Topic hooks

  onFrame(ws: WebSocket, grant: SocketGrant, frame: ClientFrame): Promise<void> | void {
    switch (frame.type) {
      case "serve":
        return this.#serve(ws, grant, frame.id, frame.group ?? DEFAULT_SERVE_GROUP, frame.durable ?? false);
      case "request":
        if (frame.requests) return this.#batchFromSocket(ws, grant, frame.requests);
        return this.#requestFromSocket(
          ws,
          grant,
          frame.id!,
          frame.data,
          frame.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
          frame.durable ?? false,
          frame.traceparent,
        );
      case "reply": {
        const responder = this.#responders.get(ws);
        if (!responder) throw new DovetailError("forbidden", "a reply from a socket that does not serve this topic (send serve first)");
        if (!frame.replies) return this.#reply(responder, frame.requestId!, frame.data, frame.error);
        // A batch: a reply the topic refuses (too large) is told to its requester only.
        for (const r of frame.replies) {
          try {
            this.#reply(responder, r.requestId, r.data, r.error);
          } catch {
            // already answered to the requester as remote_error
          }
        }
        return;
      }
    }
  }

  onSocketGone(ws: WebSocket): void {
    const responder = this.#responders.get(ws);
    if (responder) this.#removeResponder(responder);
    // A requester that left: its requests stop waiting; replies to them will be dropped.
    for (const p of this.#pending.values()) if (p.requester === ws) this.#settle(p, null);
  }

  onDelete(): void {
    for (const p of [...this.#pending.values()]) this.#settle(p, { ok: false, error: new DovetailError("topic_deleted", "this topic was deleted") });
    this.#responders.clear();
    this.#groups.clear();
    this.#durableResponders = 0;
  }

  // -------------------------------------------------------------------------------------------
  // Responders

  #serve(ws: WebSocket, grant: SocketGrant, id: number, group: string, durable: boolean): void {
    if (!grant.sub) throw new DovetailError("forbidden", "this credential may not serve this topic (serving needs the subscribe scope)");
    if (durable && !grant.con) throw new DovetailError("forbidden", "this credential may not serve durable requests (it needs the consume scope)");
    if (this.#responders.has(ws)) throw new DovetailError("conflict", "this socket already serves; open another socket to serve another group");
    const responder = new Responder(`s-${randomPart()}`, ws, group, durable);
    const attachment = this.#host.attachment(ws) as Attachment;
    attachment.responder = { id: responder.id, group, durable };
    this.#host.persist(ws);
    this.#addResponder(responder);
    ws.send(JSON.stringify({ type: "serving", id, group, responder: responder.id }));
  }

  #addResponder(responder: Responder): void {
    this.#responders.set(responder.ws, responder);
    let group = this.#groups.get(responder.group);
    if (!group) this.#groups.set(responder.group, (group = { members: [], next: 0 }));
    group.members.push(responder);
    if (responder.durable) this.#durableResponders++;
  }

  /** A responder left: its requests lose a target; a request with none left is answered `responder_gone`. */
  #removeResponder(responder: Responder): void {
    this.#responders.delete(responder.ws);
    if (responder.durable) this.#durableResponders--;
    const group = this.#groups.get(responder.group);
    if (group) {
      const i = group.members.indexOf(responder);
      if (i >= 0) group.members.splice(i, 1);
      if (i >= 0 && i < group.next) group.next--;
      if (group.members.length === 0) this.#groups.delete(responder.group);
    }
    for (const p of responder.inFlight) {
      p.targets.delete(responder);
      if (p.targets.size === 0) {
        const error = new DovetailError(
          "responder_gone",
          `the responder handling request ${p.requestId} went away before replying; it may or may not have been handled (a durable request would be handed to another responder)`,
        );
        this.#settle(p, { ok: false, error });
      }
    }
    responder.inFlight.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  #requestFromSocket(
    ws: WebSocket,
    grant: SocketGrant,
    id: number,
    data: unknown,
    timeoutMs: number,
    durable: boolean,
    traceparent: string | undefined,
  ): Promise<void> | void {
    if (!grant.pub) throw new DovetailError("forbidden", "this credential may not send requests on this topic (requesting needs the publish scope)");
    const answer = (outcome: Outcome) => {
      try {
        ws.send(outcome.ok ? `{"type":"reply","id":${id},"data":${outcome.dataJson}}` : encodeErrorFrame(outcome.error, id));
      } catch {
        // The requester is closing; nobody to tell.
      }
    };
    return this.#start(data, timeoutMs, durable, ws, answer, traceparent);
  }

  /**
   * A batch `request` frame: each request is started as if sent alone; its answer (or refusal)
   * goes back as an item of a `replies` frame, the answers of one turn together.
   */
  #batchFromSocket(ws: WebSocket, grant: SocketGrant, requests: RequestItem[]): void {
    if (!grant.pub) throw new DovetailError("forbidden", "this credential may not send requests on this topic (requesting needs the publish scope)");
    for (const r of requests) {
      const answer = (outcome: Outcome) =>
        this.#queueToRequester(ws, outcome.ok ? `{"id":${r.id},"data":${outcome.dataJson}}` : errorItem(r.id, outcome.error));
      try {
        const started = this.#start(r.data, r.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, r.durable ?? false, ws, answer, r.traceparent);
        started?.catch((e: unknown) => answer({ ok: false, error: asError(e) }));
      } catch (error) {
        answer({ ok: false, error: asError(error) });
      }
    }
  }

  #queueToRequester(ws: WebSocket, item: string): void {
    let queue = this.#toRequesters.get(ws);
    if (!queue) this.#toRequesters.set(ws, (queue = []));
    queue.push(item);
    this.#scheduleFlush();
  }

  #queueToResponder(responder: Responder, item: string): void {
    let queue = this.#toResponders.get(responder.ws);
    if (!queue) this.#toResponders.set(responder.ws, (queue = []));
    queue.push(item);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => this.#flush());
  }

  /** Send what this turn queued: one frame per socket (a `request` frame for a single request). */
  #flush(): void {
    this.#flushScheduled = false;
    for (const [ws, items] of this.#toResponders) {
      const text = items.length === 1 ? `{"type":"request",${items[0]!.slice(1)}` : `{"type":"requests","requests":[${items.join(",")}]}`;
      sendQuietly(ws, text);
    }
    this.#toResponders.clear();
    for (const [ws, items] of this.#toRequesters) sendQuietly(ws, `{"type":"replies","replies":[${items.join(",")}]}`);
    this.#toRequesters.clear();
  }

  /**
   * A request made over RPC (HTTP): resolves with the reply, or rejects with the error a socket
   * requester would get.
   */
  request(data: unknown, timeoutMs: number, durable: boolean): Promise<RequestReply> {
    return new Promise<RequestReply>((resolve, reject) => {
      const answer = (outcome: Outcome) => (outcome.ok ? resolve({ dataJson: outcome.dataJson }) : reject(outcome.error));
      const started = this.#start(data, timeoutMs, durable, null, answer);
      if (started) started.catch(reject);
    });
  }

  /** Check a request, register it, and hand it out (or store it, when durable). Throws what refuses it. */
  #start(
    data: unknown,
    timeoutMs: number,
    durable: boolean,
    requester: WebSocket | null,
    answer: (o: Outcome) => void,
    traceparent?: string,
  ): Promise<void> | undefined {
    const dataJson = this.#checkData(data, "data");
    if (this.#pending.size >= MAX_PENDING_REQUESTS) {
      throw new DovetailError("rate_limited", `this topic has ${MAX_PENDING_REQUESTS} requests waiting for replies; retry later`, { retryAfterMs: 100 });
    }
    if (durable ? this.#durableResponders === 0 : this.#groups.size === 0) {
      throw new DovetailError("no_responders", durable ? "no responder serves durable requests on this topic" : "no responder serves this topic");
    }
    const requestId = `${this.#idPrefix}${(this.#counter++).toString(36)}`;
    const pending = new PendingRequest(requestId, durable, requester, answer);
    this.#pending.set(requestId, pending);
    pending.timer = setTimeout(() => {
      pending.timer = null;
      this.#settle(pending, { ok: false, error: new DovetailError("timeout", `no reply to request ${requestId} within ${timeoutMs} ms`) });
    }, timeoutMs);
    if (durable) return this.#store(pending, dataJson, Date.now() + timeoutMs, traceparent);
    // `traceparent` passed the schema's TRACEPARENT check: hex and dashes, nothing to escape.
    const trace = traceparent === undefined ? "" : `,"traceparent":"${traceparent}"`;
    const item = `{"requestId":"${requestId}","data":${dataJson},"timeoutMs":${timeoutMs}${trace}}`;
    for (const group of this.#groups.values()) {
      const responder = group.members[group.next % group.members.length]!;
      group.next = (group.next + 1) % group.members.length;
      pending.targets.add(responder);
      responder.inFlight.add(pending);
      this.#queueToResponder(responder, item);
    }
    return undefined;
  }

  /** A durable request: a message in the topic, which the responders' group hands out. */
  async #store(pending: PendingRequest, dataJson: string, deadline: number, traceparent: string | undefined): Promise<void> {
    const message: PublishMessage = {
      data: JSON.parse(dataJson) as unknown,
      headers: {
        [REQUEST_HEADERS.id]: pending.requestId,
        [REQUEST_HEADERS.deadline]: String(deadline),
        ...(traceparent === undefined ? {} : { [TRACEPARENT_HEADER]: traceparent }),
      },
      expiresAt: deadline,
    };
    try {
      await this.#host.publish([message]);
    } catch (error) {
      this.#settle(pending, null);
      throw error;
    }
  }

  /** A responder's reply: answers the request if it still waits, else it is dropped. */
  #reply(responder: Responder, requestId: string, data: unknown, remote: ReplyItem["error"]): void {
    const pending = this.#pending.get(requestId);
    // Late (timed out, answered by another group, requester gone) or never ours: dropped.
    if (!pending) return;
    if (pending.durable ? !responder.durable : !pending.targets.has(responder)) return;
    if (remote) {
      const details = remote.code === undefined ? {} : { remoteCode: remote.code };
      this.#settle(pending, { ok: false, error: new DovetailError("remote_error", remote.message, details) });
      return;
    }
    let dataJson: string;
    try {
      dataJson = this.#checkData(data ?? null, "reply data");
    } catch (error) {
      // The requester learns why no reply comes; the responder is told too (it sent no id).
      this.#settle(pending, { ok: false, error: new DovetailError("remote_error", `the responder's reply was refused: ${(error as Error).message}`) });
      throw error;
    }
    this.#settle(pending, { ok: true, dataJson });
  }

  /** End a request: stop its timer, take it off its responders, and answer it (null: nobody to answer). */
  #settle(pending: PendingRequest, outcome: Outcome | null): void {
    if (this.#pending.get(pending.requestId) !== pending) return;
    this.#pending.delete(pending.requestId);
    if (pending.timer) clearTimeout(pending.timer);
    pending.timer = null;
    for (const r of pending.targets) r.inFlight.delete(pending);
    pending.targets.clear();
    if (outcome) pending.answer(outcome);
  }

  /** The JSON text of `data`, refused when it is too large or too deep for the topic. */
  #checkData(data: unknown, what: string): string {
    if (nestsDeeperThan(data, MAX_DATA_DEPTH)) throw new DovetailError("too_deep", `${what} nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
    const json = JSON.stringify(data ?? null);
    const max = this.#host.maxDataBytes();
    const size = utf8ByteLength(json);
    if (size > max) throw new DovetailError("message_too_large", `${what} is ${size} bytes; the limit is ${max}`);
    return json;
  }
}

function sendQuietly(ws: WebSocket, text: string): void {
  try {
    ws.send(text);
  } catch {
    // Closing: its close event cleans up.
  }
}

function asError(error: unknown): DovetailError {
  return knownError(error) ?? new DovetailError("internal", "internal error", {}, { cause: error });
}

/** An error item of a `replies` frame: what an `error` frame would carry, under `error`. */
function errorItem(id: number, error: DovetailError): string {
  return JSON.stringify({ id, error: { code: error.code, message: error.message, ...error.details } });
}
