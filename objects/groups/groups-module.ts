/**
 * GroupsModule: the consumer groups of a topic (docs/groups.md), a module of the Topic host
 * (objects/topic-module.ts). It owns the topic's {@link Group}s and gives them members: a socket
 * that sent `consume`, or an HTTP client that fetches by name. It feeds each commit to the
 * groups, runs their deadlines on the topic's alarm, and publishes their dead letters to the
 * dead-letter topic (another Topic object, by RPC, as an idempotent producer).
 */
import { DovetailError } from "../../protocol/errors.ts";
import { encodeErrorFrame, encodeServerFrame, type ClientFrame, type ProducerStamp, type PublishMessage } from "../../protocol/frames.ts";
import type { SocketGrant } from "../../protocol/grant.ts";
import {
  DEAD_LETTER_HEADERS,
  DEFAULT_MEMBER_MAX_ACK_PENDING,
  encodeJobsFrame,
  resolveGroupSettings,
  type GroupCall,
  type GroupInfo,
  type GroupReplies,
  type GroupSettings,
  type GroupSettingsInput,
} from "../../protocol/groups.ts";
import { MAX_HEADERS } from "../../protocol/frames.ts";
import type { CommittedBatch, PublishResult } from "../commit-queue.ts";
import type { SocketAttachment } from "../fanout.ts";
import type { TopicLog } from "../log.ts";
import type { RpcResult } from "../rpc-result.ts";
import type { TopicModule } from "../topic-module.ts";
import { Group, type DeadLetter, type GroupMember } from "./group.ts";
import { GroupStore } from "./group-store.ts";
import type { SqlHandle } from "../log.ts";
import type { DeliveryObserver } from "../topic-metrics.ts";

/** What a consuming socket keeps in its attachment, so it is still a member after hibernation. */
export interface ConsumerAttachment {
  /** Correlation id of its `consume` frame. */
  id: number;
  group: string;
  member: string;
  max: number;
}

export interface GroupsHost {
  log: TopicLog;
  sql: SqlHandle;
  topic: () => string;
  sockets: () => Iterable<[WebSocket, SocketAttachment]>;
  attachment: (ws: WebSocket) => SocketAttachment;
  persist: (ws: WebSocket) => void;
  /** A group is a write: the topic must be listed (and writable) first. */
  beforeWrite: () => Promise<void> | undefined;
  /** Publish to another topic of this tenant (dead letters). */
  publishTo: (topic: string, messages: PublishMessage[], producer: ProducerStamp) => Promise<RpcResult<PublishResult>>;
  /** Read another topic of this tenant (dead letters to replay). */
  readFrom: (topic: string, from: number, limit: number) => Promise<RpcResult<{ messagesJson: string; next: number; head: number }>>;
  /** A deadline may have moved. */
  reschedule: () => void;
  /** Told of deliveries, failures and dead letters (objects/topic-metrics.ts). */
  observer?: DeliveryObserver;
}

/** A member on a socket: jobs go out as `jobs` frames. */
class SocketMember implements GroupMember {
  readonly transport = "websocket";
  readonly held = new Set<number>();
  /** Sent `release`: it is leaving, and gets no more jobs (it may still settle what it holds). */
  leaving = false;
  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly maxAckPending: number,
  ) {}
  room(): number {
    return this.leaving ? 0 : this.maxAckPending - this.held.size;
  }
  deliver(jobs: string[]): void {
    try {
      this.ws.send(encodeJobsFrame(jobs));
    } catch {
      // The socket is closing; its close event gives the jobs back.
    }
  }
}

/** A member over HTTP: it takes jobs only while one of its fetches waits. */
class PullMember implements GroupMember {
  readonly transport = "http";
  readonly held = new Set<number>();
  readonly maxAckPending = Number.MAX_SAFE_INTEGER;
  #waiter: { max: number; resolve: (jobs: string[]) => void } | null = null;
  constructor(readonly id: string) {}
  room(): number {
    return this.#waiter ? this.#waiter.max : 0;
  }
  deliver(jobs: string[]): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.resolve(jobs);
  }
  wait(max: number, waitMs: number): Promise<string[]> {
    this.#waiter?.resolve([]); // one fetch per member at a time: the older one ends empty
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.#waiter?.resolve === done) this.#waiter = null;
        resolve([]);
      }, waitMs);
      const done = (jobs: string[]) => {
        clearTimeout(timer);
        resolve(jobs);
      };
      this.#waiter = { max, resolve: done };
    });
  }
  get waiting(): boolean {
    return this.#waiter !== null;
  }
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `m-${[...bytes].map((b) => b.toString(36).padStart(2, "0")).join("")}`;
}

export class GroupsModule implements TopicModule {
  readonly frameTypes = ["consume", "settle"] as const;
  readonly #host: GroupsHost;
  readonly #store: GroupStore;
  readonly #groups = new Map<string, Group>();
  readonly #socketMembers = new Map<WebSocket, { group: Group; member: SocketMember }>();

  constructor(host: GroupsHost) {
    this.#host = host;
    this.#store = new GroupStore(host.sql);
    if (!this.#store.exists) return;
    // After a wake: every group and its pending rows; sockets that consumed before hibernation are members again.
    const consumers = new Map<string, [WebSocket, ConsumerAttachment]>();
    for (const [ws, a] of host.sockets()) if (a.consumer) consumers.set(a.consumer.member, [ws, a.consumer]);
    const now = Date.now();
    for (const row of this.#store.groups()) {
      const group = this.#newGroup(row);
      this.#groups.set(row.name, group);
      group.load(now, (member) => consumers.get(member)?.[1].group === row.name);
    }
    for (const [ws, c] of consumers.values()) {
      const group = this.#groups.get(c.group);
      if (!group) continue;
      const member = new SocketMember(c.member, ws, c.max);
      group.attach(member);
      this.#socketMembers.set(ws, { group, member });
    }
  }

  #newGroup(row: ReturnType<typeof Group.newRow>): Group {
    return new Group(row, this.#host.topic, this.#store, this.#host.log, (group, letter) => this.#deadLetter(group, letter), this.#host.observer);
  }

  // -------------------------------------------------------------------------------------------
  // Topic hooks

  onCommit(batch: CommittedBatch): void {
    if (this.#groups.size === 0) return;
    const now = Date.now();
    for (const group of this.#groups.values()) {
      group.onCommit(batch.first, batch.time, batch.bodies, now);
      group.pump(now);
    }
  }

  onSocketGone(ws: WebSocket): void {
    const m = this.#socketMembers.get(ws);
    if (!m) return;
    this.#socketMembers.delete(ws);
    const now = Date.now();
    m.group.removeMember(m.member.id, now, m.member.leaving);
    m.group.pump(now);
    this.#host.reschedule();
  }

  nextDeadline(): number | null {
    let at: number | null = null;
    for (const group of this.#groups.values()) {
      const d = group.nextDeadline();
      if (d !== null && (at === null || d < at)) at = d;
    }
    return at;
  }

  onAlarm(now: number): void {
    for (const group of this.#groups.values()) group.pump(now);
  }

  onDelete(): void {
    this.#groups.clear();
    this.#socketMembers.clear();
  }

  /** Groups track stored offsets: a memory topic (protocol/durability.ts) has none to track. */
  #requireStored(): void {
    if (this.#host.log.durability === "memory") {
      throw new DovetailError(
        "not_stored",
        "this topic's durability is memory: it stores no messages, so it has no consumer groups (use a sync or async topic)",
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // WebSocket frames

  /** `consume` and `settle` frames. */
  async onFrame(ws: WebSocket, grant: SocketGrant, frame: ClientFrame): Promise<void> {
    this.#requireStored();
    const now = Date.now();
    if (frame.type === "consume") {
      if (!grant.con) throw new DovetailError("forbidden", "this credential may not consume from this topic (it needs the consume scope)");
      if (this.#socketMembers.has(ws))
        throw new DovetailError("already_consuming", "this socket already consumes; open another socket to consume from another group");
      const group = await this.#group(frame.group, frame.create, now, true);
      const member = new SocketMember(randomId(), ws, frame.maxAckPending ?? DEFAULT_MEMBER_MAX_ACK_PENDING);
      const attachment = this.#host.attachment(ws);
      attachment.consumer = { id: frame.id, group: group.name, member: member.id, max: member.maxAckPending };
      this.#host.persist(ws);
      this.#socketMembers.set(ws, { group, member });
      group.addMember(member);
      ws.send(encodeServerFrame({ type: "consuming", id: frame.id, group: group.name, member: member.id }));
      group.pump(now);
      this.#host.reschedule();
      return;
    }
    if (frame.type !== "settle") return;
    const m = this.#socketMembers.get(ws);
    if (!m) throw new DovetailError("not_consuming", "settle on a socket that does not consume (send consume first)");
    const count = m.group.settle(m.member.id, frame, now);
    if (frame.op === "release") m.member.leaving = true;
    ws.send(encodeServerFrame({ type: "settled", id: frame.id, count }));
    m.group.pump(now);
    this.#host.reschedule();
  }

  // -------------------------------------------------------------------------------------------
  // RPC (HTTP pull and admin, through the gateway)

  async call<C extends GroupCall>(call: C): Promise<GroupReplies[C["op"]]> {
    this.#requireStored();
    const now = Date.now();
    const reply = await this.#call(call, now);
    this.#host.reschedule();
    return reply as GroupReplies[C["op"]];
  }

  async #call(call: GroupCall, now: number): Promise<GroupReplies[GroupCall["op"]]> {
    const topic = this.#host.topic();
    switch (call.op) {
      case "list":
        return { groups: [...this.#groups.values()].map((g) => g.info(topic)) };
      case "create": {
        const existed = this.#groups.has(call.group);
        const group = await this.#group(call.group, call.settings, now, true);
        return { created: !existed, info: group.info(topic) };
      }
      case "info":
        return this.#existing(call.group).info(topic);
      case "delete":
        return { deleted: true, closedMembers: this.#deleteGroup(call.group) };
      case "reset": {
        const group = this.#existing(call.group);
        group.reset(call.to);
        group.pump(now);
        return group.info(topic);
      }
      case "fetch": {
        const { member: id, max = 100, waitMs = 0, create } = call.request;
        const group = await this.#group(call.group, create, now, true);
        let member = group.member(id);
        if (member && member.transport !== "http") throw new DovetailError("invalid_field", `member ${id} is a socket member of this group`);
        if (!member) {
          member = new PullMember(id);
          group.addMember(member);
        }
        const pull = member as PullMember;
        const jobs = pull.wait(max, waitMs);
        group.pump(now);
        this.#host.reschedule();
        const got = await jobs;
        if (pull.held.size === 0 && !pull.waiting && group.member(id) === pull) group.removeMember(id, Date.now());
        return { jobsJson: `[${got.join(",")}]`, count: got.length };
      }
      case "settle": {
        const group = this.#existing(call.group);
        const settled = group.settle(call.request.member, call.request, now);
        const member = group.member(call.request.member);
        if (member instanceof PullMember && member.held.size === 0 && !member.waiting) group.removeMember(member.id, now);
        group.pump(now);
        return { settled };
      }
      case "claim": {
        const group = this.#existing(call.group);
        let member = group.member(call.member);
        if (!member) {
          member = new PullMember(call.member);
          group.addMember(member);
        }
        const jobs = group.claim(member, call.minIdleMs, call.max, now);
        return { jobsJson: `[${jobs.join(",")}]`, count: jobs.length };
      }
      case "replay":
        return this.#replay(this.#existing(call.group), call.from, call.limit ?? 100, now);
    }
  }

  /** The group `name`, created with `input` when it does not exist yet (when `create` allows). */
  async #group(name: string, input: GroupSettingsInput | undefined, now: number, create: boolean): Promise<Group> {
    const topic = this.#host.topic();
    const existing = this.#groups.get(name);
    if (existing) {
      if (input) {
        const wanted = this.#settings(topic, input);
        if (!sameSettings(wanted, existing.settings)) {
          throw new DovetailError("conflict", `group ${name} exists with other settings: ${JSON.stringify(existing.settings)}`);
        }
      }
      return existing;
    }
    if (!create) throw new DovetailError("group_not_found", `no group ${name} on ${topic}`);
    const settings = this.#settings(topic, input ?? {});
    const start = this.#host.log.resolveFrom(input?.start ?? "latest");
    const wait = this.#host.beforeWrite();
    if (wait) await wait;
    const again = this.#groups.get(name); // created by a call that ran while this one waited
    if (again) return again;
    const row = Group.newRow(name, settings, start, now);
    this.#store.create(row);
    const group = this.#newGroup(row);
    this.#groups.set(name, group);
    return group;
  }

  #settings(topic: string, input: GroupSettingsInput): GroupSettings {
    const settings = resolveGroupSettings(topic, input);
    if (typeof settings === "string") throw new DovetailError("invalid_field", settings);
    return settings;
  }

  #existing(name: string): Group {
    const group = this.#groups.get(name);
    if (!group) throw new DovetailError("group_not_found", `no group ${name} on ${this.#host.topic()}`);
    return group;
  }

  /** Delete a group: its socket members get a `group_deleted` error for their `consume` (the sockets stay open). */
  #deleteGroup(name: string): number {
    const group = this.#existing(name);
    let closed = 0;
    for (const [ws, m] of this.#socketMembers) {
      if (m.group !== group) continue;
      this.#socketMembers.delete(ws);
      const attachment = this.#host.attachment(ws);
      const id = attachment.consumer?.id;
      delete attachment.consumer;
      this.#host.persist(ws);
      try {
        ws.send(encodeErrorFrame(new DovetailError("group_deleted", `group ${name} was deleted`), id));
      } catch {
        // closing anyway
      }
      closed++;
    }
    this.#groups.delete(name);
    this.#store.delete(name);
    return closed;
  }

  // -------------------------------------------------------------------------------------------
  // Dead letters

  /** Publish a dead letter (idempotently: a retry after a crash stores it once), then settle it in its group. */
  #deadLetter(group: Group, letter: DeadLetter): void {
    const topic = this.#host.topic();
    const message = deadLetterMessage(topic, group.name, letter);
    this.#host.publishTo(group.settings.deadLetterTopic, [message], { id: letter.producerId, seq: 0 }).then(
      (result) => {
        if (result.ok || result.error.code === "sequence_gap") {
          group.deadLettered(letter.offset, letter.producerId);
          group.pump(Date.now());
          this.#host.reschedule();
        } else {
          group.deadLetterFailed(letter.offset, letter.producerId, result.error);
        }
      },
      (error: unknown) => group.deadLetterFailed(letter.offset, letter.producerId, error),
    );
  }

  async #replay(group: Group, from: number | undefined, limit: number, now: number): Promise<GroupReplies["replay"]> {
    const topic = this.#host.topic();
    const dlq = group.settings.deadLetterTopic;
    const page = await this.#host.readFrom(dlq, from ?? 0, limit);
    if (!page.ok) throw DovetailError.fromWire(page.error);
    const letters = JSON.parse(page.value.messagesJson) as { headers?: Record<string, string> }[];
    const offsets: number[] = [];
    for (const letter of letters) {
      const h = letter.headers ?? {};
      if (h[DEAD_LETTER_HEADERS.topic] !== topic || h[DEAD_LETTER_HEADERS.group] !== group.name) continue;
      const offset = Number(h[DEAD_LETTER_HEADERS.offset]);
      if (Number.isSafeInteger(offset) && offset >= 0) offsets.push(offset);
    }
    const replayed = group.replay(offsets, now);
    group.pump(now);
    return { replayed, read: letters.length, next: page.value.next };
  }

  /** Info of every group (Directory stats, console). */
  infos(): GroupInfo[] {
    const topic = this.#host.topic();
    return [...this.#groups.values()].map((g) => g.info(topic));
  }
}

function sameSettings(a: GroupSettings, b: GroupSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The dead-letter topic's copy of a message: its key and payload, its headers plus where it came from and why. */
export function deadLetterMessage(topic: string, group: string, letter: DeadLetter): PublishMessage {
  const stored = JSON.parse(`{${letter.body}}`) as { key?: string; headers?: Record<string, string>; data?: unknown; bytes?: string; priority?: number };
  const headers: Record<string, string> = {};
  // The letter's own headers come first, within what is left after ours.
  const ours = 6;
  for (const [name, value] of Object.entries(stored.headers ?? {}).slice(0, MAX_HEADERS - ours)) headers[name] = value;
  headers[DEAD_LETTER_HEADERS.topic] = topic;
  headers[DEAD_LETTER_HEADERS.offset] = String(letter.offset);
  headers[DEAD_LETTER_HEADERS.group] = group;
  headers[DEAD_LETTER_HEADERS.deliveries] = String(letter.deliveries);
  headers[DEAD_LETTER_HEADERS.reason] = letter.reason;
  if (letter.error !== null) headers[DEAD_LETTER_HEADERS.error] = letter.error.slice(0, 1024);
  const message: PublishMessage = stored.bytes !== undefined ? { bytes: stored.bytes, headers } : { data: stored.data ?? null, headers };
  if (stored.key !== undefined) message.key = stored.key;
  if (stored.priority !== undefined) message.priority = stored.priority;
  return message;
}
