/**
 * Group: one consumer group of a topic, in memory, over its rows in {@link GroupStore}. It hands
 * each message of the topic's log to one member at a time, takes it back when the member does not
 * settle it in time, and sends it to the dead-letter topic after too many deliveries
 * (docs/groups.md). It knows nothing of sockets or HTTP: members are {@link GroupMember}s the
 * groups module (groups-module.ts) makes for each transport.
 *
 * Every message the group knows and has not settled is an {@link Entry}, in one state:
 * - `ready`: waiting in its priority lane for a member with room;
 * - `blocked`: ordered-by-key groups only, behind an earlier message of the same key;
 * - `held`: delivered to `member`, to be settled before `deadline`;
 * - `waiting`: failed (nack, timeout, member gone) and due again at `deadline` (backoff);
 * - `dead`: on its way to the dead-letter topic.
 * Offsets below `scan` that have no entry are settled; offsets from `scan` on are read from the
 * log as members need them, at most {@link LOOKAHEAD} ahead (priority orders within that window).
 *
 * Each public method ends with {@link Group.#flush}: the rows it changed are written in the same
 * turn, before any reply leaves the object.
 */
import type { DeliveryFailure } from "../../protocol/metrics.ts";
import type { DeliveryObserver } from "../topic-metrics.ts";
import { DovetailError } from "../../protocol/errors.ts";
import type { SubscribeFrom } from "../../protocol/frames.ts";
import {
  jobJson,
  type DeadLetterReason,
  type GroupInfo,
  type GroupMember as GroupMemberInfo,
  type GroupSettings,
  type GroupStats,
  type JobRef,
  type PendingJob,
  type Settle,
} from "../../protocol/groups.ts";
import { MAX_PRIORITY } from "../../protocol/frames.ts";
import { dispatchMeta } from "../../protocol/stored-message.ts";
import type { StoredRow } from "../log.ts";
import { MinHeap } from "./min-heap.ts";
import type { GroupStore, PendingRow } from "./group-store.ts";

/** Most unsettled messages a group reads ahead of its members; priority orders within this window. */
export const LOOKAHEAD = 10_000;
/** Messages read from the log per step when filling the window. */
const SCAN_PAGE = 1000;
const SCAN_PAGE_BYTES = 1024 * 1024;
/** Bodies up to this size stay in memory between reading and delivering; larger ones are read again. */
const KEEP_BODY_CHARS = 16 * 1024;
/** A dead letter that could not be published is tried again after this long. */
export const DEAD_LETTER_RETRY_MS = 5_000;
/**
 * Running totals that changed while the floor did not move are written at most this often (a
 * crash may lose the last second of them; the floor and pending rows are always written at once).
 */
const STATS_SAVE_MS = 1000;
/** Most pending jobs group info lists. */
const INFO_PENDING = 100;

/** The log as a group reads it (TopicLog). */
export interface GroupLog {
  readonly head: number;
  readonly earliest: number;
  read(from: number, limit: number, maxBytes: number): StoredRow[];
  readAt(offsets: readonly number[]): StoredRow[];
  resolveFrom(from: SubscribeFrom): number;
}

/** A member of a group, on any transport. */
export interface GroupMember {
  readonly id: string;
  readonly transport: "websocket" | "http";
  readonly maxAckPending: number;
  /** Offsets this member holds. */
  readonly held: Set<number>;
  /** How many more jobs it takes now. */
  room(): number;
  /** Hand it jobs (JSON texts, protocol/groups.ts `jobJson`). */
  deliver(jobs: string[]): void;
}

/** Where dead letters go: the module publishes them and calls back {@link Group.deadLettered} or {@link Group.deadLetterFailed}. */
export type DeadLetterSink = (group: Group, letter: DeadLetter) => void;

export interface DeadLetter {
  offset: number;
  time: number;
  body: string;
  deliveries: number;
  reason: DeadLetterReason;
  error: string | null;
  /** Idempotent producer id of the publish: a retry after a crash stores it once. */
  producerId: string;
}

type EntryState = "ready" | "blocked" | "held" | "waiting" | "dead";

interface Entry {
  off: number;
  time: number;
  /** Kept for small messages; null when it must be read again. */
  body: string | null;
  key: string | undefined;
  priority: number;
  expiresAt: number | undefined;
  delivery: number;
  state: EntryState;
  member: string | null;
  deadline: number;
  reason: string | null;
  dead: { id: string; why: DeadLetterReason } | null;
  /** Has a row in dt_group_pending. */
  saved: boolean;
}

interface Due {
  at: number;
  entry: Entry;
}

function emptyStats(): GroupStats {
  return { delivered: 0, redelivered: 0, acked: 0, deadLettered: 0, expired: 0 };
}

export class Group {
  readonly name: string;
  readonly topic: () => string;
  readonly settings: GroupSettings;
  readonly created: number;
  readonly #store: GroupStore;
  readonly #log: GroupLog;
  readonly #deadLetters: DeadLetterSink;
  readonly #observer: DeliveryObserver | undefined;
  #floor: number;
  #scan: number;
  #stats: GroupStats;
  /** Offsets settled out of order, known from storage, not yet passed by the scan. */
  #doneAhead = new Set<number>();
  readonly #entries = new Map<number, Entry>();
  readonly #lanes: MinHeap<Entry>[] = Array.from({ length: MAX_PRIORITY + 1 }, () => new MinHeap<Entry>((e) => e.off));
  #readyCount = 0;
  readonly #due = new MinHeap<Due>((d) => d.at);
  /** Ordered-by-key groups: the one entry of each key that may be ready or in flight, and those behind it. */
  readonly #keyHead = new Map<string, Entry>();
  readonly #keyQueue = new Map<string, Entry[]>();
  readonly #members = new Map<string, GroupMember>();
  #memberTurn = 0;
  #inFlight = 0;
  // Changes of the current operation, written by #flush().
  readonly #save = new Map<number, Entry>();
  readonly #drop = new Set<number>();
  readonly #done: number[] = [];
  #floorDirty = false;
  /** Totals changed without the floor moving: saved with the next floor move, or after {@link STATS_SAVE_MS}. */
  #statsDirty = false;
  #statsSavedAt = 0;
  /** Offsets with a `dt_group_done` row, so a floor move deletes rows only when some lie below it. */
  readonly #doneRows = new Set<number>();

  constructor(
    row: { name: string; settings: GroupSettings; floor: number; created: number; stats: GroupStats },
    topic: () => string,
    store: GroupStore,
    log: GroupLog,
    deadLetters: DeadLetterSink,
    observer?: DeliveryObserver,
  ) {
    this.#observer = observer;
    this.name = row.name;
    this.topic = topic;
    this.settings = row.settings;
    this.created = row.created;
    this.#floor = row.floor;
    this.#scan = row.floor;
    this.#stats = row.stats;
    this.#store = store;
    this.#log = log;
    this.#deadLetters = deadLetters;
  }

  /** A new group's first row: starting at `start` of the log. */
  static newRow(name: string, settings: GroupSettings, start: number, now: number) {
    return { name, settings, floor: start, created: now, stats: emptyStats() };
  }

  /**
   * Rebuild from storage after a wake: pending rows become entries (a held one whose member is
   * not connected any more is due at once), settled-ahead offsets are skipped by the scan.
   */
  load(now: number, connected: (member: string) => boolean): void {
    for (const off of this.#store.done(this.name)) {
      this.#doneAhead.add(off);
      this.#doneRows.add(off);
    }
    const rows = this.#store.pending(this.name);
    const bodies = new Map(this.#log.readAt(rows.map((r) => r.off)).map((r) => [r.offset, r]));
    for (const row of rows) {
      const stored = bodies.get(row.off);
      if (!stored) {
        // Trimmed by retention while pending: nothing left to deliver.
        this.#drop.add(row.off);
        continue;
      }
      const entry = this.#entryOf(stored, row);
      this.#entries.set(entry.off, entry);
      if (entry.dead) {
        entry.state = "dead";
        entry.deadline = now;
        this.#at(now, entry); // publish again, idempotently
      } else if (row.member !== null && connected(row.member)) {
        entry.state = "held";
        this.#inFlight++;
        this.#at(entry.deadline, entry);
      } else if (row.member !== null) {
        entry.member = null;
        entry.state = "waiting";
        entry.deadline = now;
        this.#at(now, entry);
      } else {
        entry.state = "waiting";
        this.#at(entry.deadline, entry);
      }
      if (this.settings.orderedByKey && entry.key !== undefined && !this.#keyHead.has(entry.key)) this.#keyHead.set(entry.key, entry);
    }
    this.#flush();
  }

  /** A member holding an entry after a wake (its socket survived hibernation). */
  attach(member: GroupMember): void {
    this.#members.set(member.id, member);
    for (const e of this.#entries.values()) if (e.state === "held" && e.member === member.id) member.held.add(e.off);
  }

  addMember(member: GroupMember): void {
    this.#members.set(member.id, member);
  }

  hasMember(id: string): boolean {
    return this.#members.has(id);
  }

  member(id: string): GroupMember | undefined {
    return this.#members.get(id);
  }

  /**
   * A member left (socket closed): what it held is delivered again at once. That counts as a
   * failed delivery, unless the member said it was leaving (`release`): then what it still holds
   * was on its way to it and never seen (it settled or released everything it had).
   */
  removeMember(id: string, now: number, announced = false): void {
    const member = this.#members.get(id);
    if (!member) return;
    this.#members.delete(id);
    for (const off of [...member.held]) {
      const e = this.#entries.get(off);
      if (e?.state !== "held" || e.member !== id) continue;
      if (announced) {
        this.#release(e, member);
        this.#undeliver(e);
      } else {
        this.#failed(e, now, 0, "member left", "member_gone");
      }
    }
    member.held.clear();
    this.#flush();
  }

  get floor(): number {
    return this.#floor;
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  /** Hand ready messages to members with room, reading the log ahead as needed. */
  pump(now: number): void {
    this.#runDue(now);
    const batches = new Map<GroupMember, string[]>();
    const members = [...this.#members.values()];
    // Room is asked once per pump: a member's room() does not see this pump's jobs until deliver().
    const rooms = members.map((m) => m.room());
    let idle = 0;
    while (this.#inFlight < this.settings.maxAckPending && members.length > 0 && idle < members.length) {
      const turn = this.#memberTurn++ % members.length;
      if (rooms[turn]! <= 0) {
        idle++;
        continue;
      }
      const entry = this.#nextReady(now);
      if (!entry) break;
      idle = 0;
      const member = members[turn]!;
      const job = this.#deliver(entry, member, now);
      if (job === null) continue;
      rooms[turn] = rooms[turn]! - 1;
      let batch = batches.get(member);
      if (!batch) batches.set(member, (batch = []));
      batch.push(job);
    }
    this.#flush();
    for (const [member, jobs] of batches) member.deliver(jobs);
  }

  /** The ready entry to deliver next: highest priority, then lowest offset. Expired ones are settled on the way. */
  #nextReady(now: number): Entry | null {
    for (;;) {
      if (this.#readyCount < LOOKAHEAD / 2) this.#fill(now);
      let entry: Entry | undefined;
      for (let p = MAX_PRIORITY; p >= 0 && !entry; p--) {
        const lane = this.#lanes[p]!;
        while (lane.size > 0) {
          const e = lane.pop()!;
          if (e.state === "ready" && this.#entries.get(e.off) === e) {
            entry = e;
            break;
          }
        }
      }
      if (!entry) return null;
      this.#readyCount--;
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.#expire(entry, now);
        continue;
      }
      return entry;
    }
  }

  /** The entry's stored body: kept in memory, or read again. Null (and settled) when retention removed it. */
  #body(entry: Entry): string | null {
    if (entry.body !== null) return entry.body;
    const row = this.#log.readAt([entry.off])[0];
    if (!row) {
      this.#settle(entry);
      return null;
    }
    if (row.body.length <= KEEP_BODY_CHARS) entry.body = row.body;
    return row.body;
  }

  #deliver(entry: Entry, member: GroupMember, now: number): string | null {
    const body = this.#body(entry);
    if (body === null) return null;
    const time = entry.time;
    if (entry.delivery > 0) this.#stats.redelivered++;
    this.#stats.delivered++;
    this.#observer?.delivered(1, now - time);
    entry.delivery++;
    entry.state = "held";
    entry.member = member.id;
    entry.deadline = now + this.settings.ackWaitMs;
    member.held.add(entry.off);
    this.#inFlight++;
    this.#at(entry.deadline, entry);
    this.#save.set(entry.off, entry);
    this.#statsDirty = true;
    return jobJson(entry.off, time, entry.delivery, body);
  }

  /** Read the log from `scan` until the window is full or the log ends. */
  #fill(now: number): void {
    if (this.#scan < this.#log.earliest) this.#trimmedTo(this.#log.earliest);
    while (this.#readyCount < LOOKAHEAD && this.#scan < this.#log.head) {
      const rows = this.#log.read(this.#scan, Math.min(SCAN_PAGE, LOOKAHEAD - this.#readyCount), SCAN_PAGE_BYTES);
      if (rows.length === 0) break;
      this.#take(rows, now);
    }
  }

  /** Messages just committed to the log: taken straight from memory when the scan is at them. */
  onCommit(first: number, time: number, bodies: readonly string[], now: number): void {
    if (this.#scan !== first || this.#readyCount >= LOOKAHEAD) return;
    const rows: StoredRow[] = new Array(bodies.length);
    for (let i = 0; i < bodies.length; i++) rows[i] = { offset: first + i, time, body: bodies[i]! };
    this.#take(rows, now);
  }

  #take(rows: readonly StoredRow[], now: number): void {
    for (const row of rows) {
      this.#scan = row.offset + 1;
      if (this.#doneAhead.delete(row.offset) || this.#entries.has(row.offset)) continue;
      const entry = this.#entryOf(row, null);
      this.#entries.set(entry.off, entry);
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.#expire(entry, now);
        continue;
      }
      this.#makeReady(entry);
    }
    this.#advanceFloor();
  }

  #entryOf(row: StoredRow, pending: PendingRow | null): Entry {
    const meta = dispatchMeta(row.body);
    const ttl = this.settings.messageTtlMs;
    const groupExpiry = ttl === null ? undefined : row.time + ttl;
    const expiresAt = meta.expiresAt === undefined ? groupExpiry : groupExpiry === undefined ? meta.expiresAt : Math.min(meta.expiresAt, groupExpiry);
    return {
      off: row.offset,
      time: row.time,
      body: row.body.length <= KEEP_BODY_CHARS ? row.body : null,
      key: meta.key,
      priority: Math.min(MAX_PRIORITY, Math.max(0, meta.priority)),
      expiresAt,
      delivery: pending?.delivery ?? 0,
      state: "ready",
      member: pending?.member ?? null,
      deadline: pending?.deadline ?? 0,
      reason: pending?.reason ?? null,
      dead: pending?.dead ? (JSON.parse(pending.dead) as Entry["dead"]) : null,
      saved: pending !== null,
    };
  }

  /** Put an entry in its lane, or behind the earlier message of its key. */
  #makeReady(entry: Entry): void {
    if (this.settings.orderedByKey && entry.key !== undefined) {
      const head = this.#keyHead.get(entry.key);
      if (head && head !== entry) {
        entry.state = "blocked";
        let queue = this.#keyQueue.get(entry.key);
        if (!queue) this.#keyQueue.set(entry.key, (queue = []));
        queue.push(entry);
        return;
      }
      this.#keyHead.set(entry.key, entry);
    }
    entry.state = "ready";
    entry.member = null;
    this.#lanes[entry.priority]!.push(entry);
    this.#readyCount++;
  }

  // -------------------------------------------------------------------------------------------
  // Settling

  /**
   * Settle jobs `member` holds. All of them are checked first: one that is unknown, settled,
   * held by another member or at another delivery refuses the whole request with `not_held`,
   * and nothing changes.
   */
  settle(memberId: string, request: Settle, now: number): number {
    if (request.jobs.length === 0 && request.op !== "release")
      throw new DovetailError("invalid_field", "jobs: name at least one job (only release may name none)");
    const entries: Entry[] = [];
    const seen = new Set<number>();
    for (const ref of request.jobs) {
      const e = this.#entries.get(ref.offset);
      if (seen.has(ref.offset)) throw new DovetailError("invalid_field", `jobs: offset ${ref.offset} is named twice`);
      seen.add(ref.offset);
      if (e?.state !== "held" || e.member !== memberId || e.delivery !== ref.delivery) throw notHeld(ref, e, memberId);
      entries.push(e);
    }
    const member = this.#members.get(memberId);
    for (const e of entries) {
      switch (request.op) {
        case "ack":
          this.#release(e, member);
          this.#stats.acked++;
          this.#settle(e);
          break;
        case "progress":
          e.deadline = now + this.settings.ackWaitMs;
          this.#at(e.deadline, e);
          this.#save.set(e.off, e);
          break;
        case "nack":
          this.#failed(e, now, request.delayMs, request.reason ?? null, "nack");
          break;
        case "term":
          this.#release(e, member);
          e.reason = request.reason ?? null;
          this.#toDeadLetters(e, "terminated", now);
          break;
        case "release":
          this.#release(e, member);
          this.#undeliver(e);
          break;
      }
    }
    this.#flush();
    return entries.length;
  }

  /** Never started: this delivery is taken back and does not count toward maxDeliver; ready at once. */
  #undeliver(e: Entry): void {
    e.delivery--;
    this.#stats.delivered--;
    if (e.delivery > 0) this.#stats.redelivered--;
    this.#statsDirty = true;
    this.#makeReady(e);
    if (e.delivery === 0 && e.off >= this.#floor) {
      // As if never delivered: no pending row (a replay below the floor keeps one).
      this.#save.delete(e.off);
      this.#drop.add(e.off);
      e.saved = false;
    } else {
      this.#save.set(e.off, e);
    }
  }

  #release(e: Entry, member: GroupMember | undefined): void {
    member?.held.delete(e.off);
    if (e.state === "held") this.#inFlight--;
    e.member = null;
  }

  /** A delivery failed (nack, timeout, member gone): deliver again after the backoff, or dead-letter. */
  #failed(e: Entry, now: number, delayMs: number | undefined, reason: string | null, kind: DeliveryFailure): void {
    this.#observer?.failed(kind);
    if (e.state === "held") {
      this.#members.get(e.member ?? "")?.held.delete(e.off);
      this.#inFlight--;
    }
    e.member = null;
    if (reason !== null) e.reason = reason;
    if (e.delivery >= this.settings.maxDeliver) {
      this.#toDeadLetters(e, "max_deliver", now);
      return;
    }
    const backoff = this.settings.backoffMs;
    const delay = delayMs ?? (backoff.length === 0 ? 0 : backoff[Math.min(e.delivery, backoff.length) - 1]!);
    e.state = "waiting";
    e.deadline = now + delay;
    this.#at(e.deadline, e);
    this.#save.set(e.off, e);
  }

  #expire(e: Entry, now: number): void {
    if (this.settings.deadLetterExpired) {
      this.#toDeadLetters(e, "expired", now);
      return;
    }
    this.#stats.expired++;
    this.#settle(e);
  }

  #toDeadLetters(e: Entry, why: DeadLetterReason, now: number): void {
    e.state = "dead";
    e.member = null;
    // Unique per dead-lettering (created time and the running total tell replays apart), so the
    // publish is idempotent across a crash but a replayed message can die again.
    e.dead = { id: `dlq.${this.name}.${this.created}.${e.off}.${this.#stats.deadLettered + this.#stats.expired + this.#stats.delivered}`, why };
    e.deadline = now + DEAD_LETTER_RETRY_MS;
    this.#at(e.deadline, e);
    this.#save.set(e.off, e);
    this.#sendDeadLetter(e);
  }

  #sendDeadLetter(e: Entry): void {
    const dead = e.dead!;
    const body = this.#body(e);
    if (body === null) return;
    this.#deadLetters(this, { offset: e.off, time: e.time, body, deliveries: e.delivery, reason: dead.why, error: e.reason, producerId: dead.id });
  }

  /** The dead letter for `offset` is stored in the dead-letter topic. */
  deadLettered(offset: number, producerId: string): void {
    const e = this.#entries.get(offset);
    if (e?.state !== "dead" || e.dead?.id !== producerId) return;
    if (e.dead.why === "expired") this.#stats.expired++;
    this.#stats.deadLettered++;
    this.#observer?.deadLettered();
    this.#settle(e);
    this.#flush();
  }

  /** Publishing the dead letter failed: it is tried again at its deadline. */
  deadLetterFailed(offset: number, producerId: string, error: unknown): void {
    const e = this.#entries.get(offset);
    if (!e || e.dead?.id !== producerId) return;
    console.error(`group ${this.name}: dead letter for offset ${offset} not stored yet, retrying`, error);
  }

  /** The message is done for this group. */
  #settle(e: Entry): void {
    this.#entries.delete(e.off);
    this.#statsDirty = true;
    if (e.saved || this.#save.has(e.off)) {
      this.#save.delete(e.off);
      this.#drop.add(e.off);
    }
    if (e.off >= this.#floor && e.off !== this.#floor) this.#done.push(e.off);
    // Known from storage but not read by the scan yet (after a wake): the scan must skip it.
    if (e.off >= this.#scan) this.#doneAhead.add(e.off);
    if (this.settings.orderedByKey && e.key !== undefined && this.#keyHead.get(e.key) === e) {
      this.#keyHead.delete(e.key);
      const queue = this.#keyQueue.get(e.key);
      const next = queue?.shift();
      if (queue && queue.length === 0) this.#keyQueue.delete(e.key);
      if (next) this.#makeReady(next);
    }
    this.#advanceFloor();
  }

  /** Move the floor over every settled offset (those below the scan with no entry). */
  #advanceFloor(): void {
    let floor = this.#floor;
    while (floor < this.#scan && !this.#entries.has(floor)) floor++;
    if (floor !== this.#floor) {
      this.#floor = floor;
      this.#floorDirty = true;
    }
  }

  #trimmedTo(earliest: number): void {
    for (const [off, e] of this.#entries) if (off < earliest) this.#settle(e);
    if (this.#scan < earliest) this.#scan = earliest;
    for (const off of this.#doneAhead) if (off < earliest) this.#doneAhead.delete(off);
    this.#advanceFloor();
  }

  // -------------------------------------------------------------------------------------------
  // Deadlines

  /** Make `at` the entry's deadline (only the latest deadline of an entry is live). */
  #at(at: number, entry: Entry): void {
    entry.deadline = at;
    this.#due.push({ at, entry });
  }

  /** When this group next needs the alarm. */
  nextDeadline(): number | null {
    for (;;) {
      const top = this.#due.peek();
      if (!top) return null;
      if (this.#isLive(top)) return top.at;
      this.#due.pop();
    }
  }

  #isLive(d: Due): boolean {
    const e = d.entry;
    return this.#entries.get(e.off) === e && e.deadline === d.at && (e.state === "held" || e.state === "waiting" || e.state === "dead");
  }

  /** Do what is due: held jobs past their deadline fail, waiting ones become ready, dead letters are sent again. */
  #runDue(now: number): void {
    for (;;) {
      const top = this.#due.peek();
      if (!top || top.at > now) break;
      this.#due.pop();
      if (!this.#isLive(top)) continue;
      const e = top.entry;
      if (e.state === "held") this.#failed(e, now, undefined, "ack wait expired", "timeout");
      else if (e.state === "waiting") this.#makeReady(e);
      else {
        e.deadline = now + DEAD_LETTER_RETRY_MS;
        this.#at(e.deadline, e);
        this.#sendDeadLetter(e);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Admin

  /** Claim jobs held for at least `minIdleMs` for `member` (like XAUTOCLAIM): delivered to it now. */
  claim(member: GroupMember, minIdleMs: number, max: number, now: number): string[] {
    const jobs: string[] = [];
    for (const e of [...this.#entries.values()].sort((a, b) => a.off - b.off)) {
      if (jobs.length >= max) break;
      if (e.state !== "held" || e.member === member.id) continue;
      if (now - (e.deadline - this.settings.ackWaitMs) < minIdleMs) continue;
      this.#release(e, this.#members.get(e.member ?? ""));
      e.state = "ready";
      const job = this.#deliver(e, member, now);
      if (job !== null) jobs.push(job);
    }
    this.#flush();
    return jobs;
  }

  /** Deliver `offsets` again (replayed dead letters): each becomes ready with its count reset. Returns how many. */
  replay(offsets: readonly number[], now: number): number {
    const rows = this.#log.readAt(offsets.filter((o) => !this.#entries.has(o)));
    const undone: number[] = [];
    for (const row of rows) {
      if (row.offset >= this.#scan) continue; // not read by the group yet: it will be delivered anyway
      const entry = this.#entryOf(row, null);
      entry.saved = false;
      this.#entries.set(entry.off, entry);
      this.#save.set(entry.off, entry);
      undone.push(entry.off);
      if (entry.off < this.#floor) {
        // Below the floor: kept as a pending row (waiting, due now) so a restart still delivers it.
        entry.state = "waiting";
        entry.deadline = now;
        this.#at(now, entry);
      } else {
        this.#makeReady(entry);
      }
    }
    this.#store.dropDone(this.name, undone);
    for (const off of undone) this.#doneRows.delete(off);
    this.#flush();
    return rows.length;
  }

  /** Start again at `to`: everything pending is forgotten; members' held jobs can no longer be settled. */
  reset(to: SubscribeFrom): void {
    const floor = this.#log.resolveFrom(to);
    this.#entries.clear();
    for (const lane of this.#lanes) lane.clear();
    this.#due.clear();
    this.#keyHead.clear();
    this.#keyQueue.clear();
    this.#doneAhead.clear();
    this.#readyCount = 0;
    this.#inFlight = 0;
    for (const m of this.#members.values()) m.held.clear();
    this.#floor = floor;
    this.#scan = floor;
    this.#save.clear();
    this.#drop.clear();
    this.#done.length = 0;
    this.#floorDirty = false;
    this.#doneRows.clear();
    this.#store.reset(this.name, floor, this.#stats);
  }

  info(topic: string): GroupInfo {
    const pending: PendingJob[] = [];
    let pendingCount = 0;
    // Replayed dead letters sit below the stored floor: the floor reported is below them too, so
    // "every offset below ackFloor is settled" holds.
    let ackFloor = this.#floor;
    for (const e of this.#entries.values()) {
      if (e.off < ackFloor) ackFloor = e.off;
      if (e.state !== "held" && e.state !== "waiting" && e.state !== "dead") continue;
      pendingCount++;
      pending.push({ offset: e.off, delivery: e.delivery, member: e.member, deadline: e.deadline });
    }
    pending.sort((a, b) => a.offset - b.offset);
    const members: GroupMemberInfo[] = [...this.#members.values()].map((m) => ({
      member: m.id,
      transport: m.transport,
      held: m.held.size,
      maxAckPending: m.maxAckPending,
    }));
    const head = this.#log.head;
    return {
      group: this.name,
      topic,
      settings: this.settings,
      created: this.created,
      ackFloor,
      head,
      lag: Math.max(0, head - ackFloor),
      pendingCount,
      pending: pending.slice(0, INFO_PENDING),
      members,
      stats: { ...this.#stats },
    };
  }

  // -------------------------------------------------------------------------------------------

  /** Write what this operation changed, in the same turn. */
  #flush(): void {
    if (this.#drop.size > 0) {
      this.#store.dropPending(this.name, [...this.#drop]);
      this.#drop.clear();
    }
    if (this.#save.size > 0) {
      const rows: PendingRow[] = [];
      for (const e of this.#save.values()) {
        rows.push({ off: e.off, delivery: e.delivery, member: e.member, deadline: e.deadline, reason: e.reason, dead: e.dead ? JSON.stringify(e.dead) : null });
        e.saved = true;
      }
      this.#store.savePending(this.name, rows);
      this.#save.clear();
    }
    if (this.#done.length > 0) {
      const ahead = this.#done.filter((off) => off >= this.#floor);
      this.#store.addDone(this.name, ahead);
      for (const off of ahead) this.#doneRows.add(off);
      this.#done.length = 0;
    }
    const now = Date.now();
    if (this.#floorDirty || (this.#statsDirty && now - this.#statsSavedAt >= STATS_SAVE_MS)) {
      let sweep = false;
      for (const off of this.#doneRows) {
        if (off >= this.#floor) continue;
        this.#doneRows.delete(off);
        sweep = true;
      }
      this.#store.saveFloor(this.name, this.#floor, this.#stats, sweep);
      this.#floorDirty = false;
      this.#statsDirty = false;
      this.#statsSavedAt = now;
    }
  }
}

function notHeld(ref: JobRef, e: { state: EntryState; member: string | null; delivery: number } | undefined, member: string): DovetailError {
  let why: string;
  if (!e) why = "it is not pending in this group (never delivered, already settled, or the group was reset)";
  else if (e.state !== "held") why = "it is not held by any member now (its ack wait ran out, or it was settled)";
  else if (e.member !== member) why = "another member holds it (its ack wait ran out and it was delivered again)";
  else why = `it is at delivery ${e.delivery} now, not ${ref.delivery}`;
  return new DovetailError("not_held", `offset ${ref.offset} (delivery ${ref.delivery}) cannot be settled by ${member}: ${why}`);
}
