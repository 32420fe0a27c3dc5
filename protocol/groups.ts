/**
 * Consumer groups on the wire (docs/groups.md, docs/protocol.md "Consumer groups"): the group
 * settings, the frames a consuming socket sends and receives, and the HTTP pull and admin bodies.
 * A group is a named, durable cursor on a topic that hands each message to one member at a time
 * and takes it back when the member does not settle it.
 *
 * Compatibility rule as for every v1 frame: receivers ignore fields they do not know.
 */
import type { DeliveredMessage } from "./frames.ts";
import type { FetchRequest, GroupSettingsInput, SettleRequest } from "./group-schemas.ts";
import type { SubscribeFrom } from "./subscribe-from.ts";
import { topicNameProblem } from "./topic-name.ts";

/** Group names: 1–64 of A-Z a-z 0-9 _ - (no separators: a group lives inside one topic). */
export const GROUP_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Member names (HTTP pull members name themselves; socket members get one from the topic). */
export const MEMBER_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export const DEFAULT_ACK_WAIT_MS = 30_000;
export const MIN_ACK_WAIT_MS = 100;
export const MAX_ACK_WAIT_MS = 12 * 60 * 60 * 1000;
export const DEFAULT_MAX_DELIVER = 5;
export const MAX_MAX_DELIVER = 1000;
export const MAX_BACKOFF_STEPS = 20;
export const MAX_BACKOFF_MS = 24 * 60 * 60 * 1000;
/** Messages in flight to the whole group, at most (like a queue's prefetch across consumers). */
export const DEFAULT_GROUP_MAX_ACK_PENDING = 10_000;
export const MAX_GROUP_MAX_ACK_PENDING = 100_000;
/** Messages in flight to one member, at most (its prefetch). */
export const DEFAULT_MEMBER_MAX_ACK_PENDING = 100;
export const MAX_MEMBER_MAX_ACK_PENDING = 10_000;
/** Jobs one `settle` frame or HTTP ack may name. */
export const MAX_SETTLE_JOBS = 10_000;
/** Longest an HTTP fetch waits for a first job. */
export const MAX_FETCH_WAIT_MS = 30_000;
/** Most jobs one HTTP fetch returns. */
export const MAX_FETCH_JOBS = 1000;
/** Longest `nack` delay. */
export const MAX_NACK_DELAY_MS = MAX_BACKOFF_MS;
export const MAX_REASON_LENGTH = 1024;

// The zod schemas of group settings, frames and HTTP bodies are in group-schemas.ts, for the
// server: this module builds none, so clients never load zod (decision 025). Their types:
export type { ConsumeFrame, FetchRequest, GroupSettingsInput, JobRef, Settle, SettleFrame, SettleRequest } from "./group-schemas.ts";

/** Why `name` is not a valid group name, or null. */
export function groupNameProblem(name: unknown): string | null {
  if (typeof name !== "string" || !GROUP_NAME.test(name)) return "a group name is 1–64 characters of A-Z a-z 0-9 _ -";
  return null;
}

/** Settings with every default filled in, as stored and as reported. */
export interface GroupSettings {
  ackWaitMs: number;
  maxDeliver: number;
  backoffMs: number[];
  maxAckPending: number;
  orderedByKey: boolean;
  deadLetterTopic: string;
  deadLetterExpired: boolean;
  messageTtlMs: number | null;
}

/** The dead-letter topic a group on `topic` uses by default. */
export function defaultDeadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/**
 * Fill in defaults and check what the schema cannot: the dead-letter topic must be a valid
 * topic name and must not be the group's own topic (dead letters would come back as work).
 * Returns the settings or a message saying what is wrong.
 */
export function resolveGroupSettings(topic: string, input: GroupSettingsInput): GroupSettings | string {
  const deadLetterTopic = input.deadLetterTopic ?? defaultDeadLetterTopic(topic);
  const problem = topicNameProblem(deadLetterTopic);
  if (problem) return `deadLetterTopic: ${problem}`;
  if (deadLetterTopic === topic) return "deadLetterTopic: dead letters may not go to the group's own topic (they would be handed out again)";
  return {
    ackWaitMs: input.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    maxDeliver: input.maxDeliver ?? DEFAULT_MAX_DELIVER,
    backoffMs: input.backoffMs ?? [],
    maxAckPending: input.maxAckPending ?? DEFAULT_GROUP_MAX_ACK_PENDING,
    orderedByKey: input.orderedByKey ?? false,
    deadLetterTopic,
    deadLetterExpired: input.deadLetterExpired ?? false,
    messageTtlMs: input.messageTtlMs ?? null,
  };
}

/**
 * How a member settles jobs: `ack`, `nack`, `progress`, `term` (docs/groups.md), and `release`:
 * "never started": the job goes back at once and this delivery does not count toward
 * `maxDeliver`. A socket member that releases is leaving: it gets no more jobs (it may still
 * settle what it holds). A consumer that stops releases the jobs it received and never handed to
 * the application.
 */
export const SETTLE_OPS = ["ack", "nack", "progress", "term", "release"] as const;
export type SettleOp = (typeof SETTLE_OPS)[number];

// ---------------------------------------------------------------------------------------------
// WebSocket frames (on a topic socket; docs/protocol.md)

/** `consuming` (server → client): this socket is member `member` of `group`. */
export interface ConsumingFrame {
  type: "consuming";
  id: number;
  group: string;
  member: string;
}

/** One job: a delivered message with how many times it has been delivered (1 the first time). */
export interface Job extends DeliveredMessage {
  delivery: number;
}

/** `jobs` (server → client): jobs for this member, never more than its `maxAckPending` unsettled. */
export interface JobsFrame {
  type: "jobs";
  jobs: Job[];
}

/** `settled` (server → client): the `settle` with this id was applied (and is durable). */
export interface SettledFrame {
  type: "settled";
  id: number;
  count: number;
}

/** The JSON of one job: a stored body with its offset, time and delivery count. */
export function jobJson(offset: number, time: number, delivery: number, body: string): string {
  return `{"offset":${offset},"time":${time},"delivery":${delivery},${body}}`;
}

/** Encode a `jobs` frame from job JSON texts. */
export function encodeJobsFrame(jobs: readonly string[]): string {
  return `{"type":"jobs","jobs":[${jobs.join(",")}]}`;
}

// ---------------------------------------------------------------------------------------------
// HTTP bodies (docs/protocol.md, "Consumer groups over HTTP")

/** One held job, as group info reports it. */
export interface PendingJob {
  offset: number;
  delivery: number;
  member: string | null;
  /** When it is delivered again unless settled (ms since the epoch). */
  deadline: number;
}

/** A member as group info reports it. */
export interface GroupMember {
  member: string;
  transport: "websocket" | "http";
  held: number;
  maxAckPending: number;
}

/** `GET .../groups/{group}`. */
export interface GroupInfo {
  group: string;
  topic: string;
  settings: GroupSettings;
  created: number;
  /** Every offset below this is settled (acked, dead-lettered or expired) for this group. */
  ackFloor: number;
  head: number;
  /** head − ackFloor. */
  lag: number;
  /** Delivered and not settled. */
  pendingCount: number;
  /** The first pending jobs by offset (at most 100). */
  pending: PendingJob[];
  members: GroupMember[];
  stats: GroupStats;
}

/** Running totals of a group (since it was created or reset). */
export interface GroupStats {
  delivered: number;
  redelivered: number;
  acked: number;
  deadLettered: number;
  expired: number;
}

/** Dead-letter headers (docs/groups.md, "Dead letters"). */
export const DEAD_LETTER_HEADERS = {
  topic: "dovetail-dlq-topic",
  offset: "dovetail-dlq-offset",
  group: "dovetail-dlq-group",
  deliveries: "dovetail-dlq-deliveries",
  reason: "dovetail-dlq-reason",
  error: "dovetail-dlq-error",
} as const;

/** Why a message became a dead letter. */
export type DeadLetterReason = "max_deliver" | "terminated" | "expired";

// ---------------------------------------------------------------------------------------------
// Gateway → topic (RPC): one call per group operation; the gateway has checked the body.

export type GroupCall =
  | { op: "create"; group: string; settings: GroupSettingsInput }
  | { op: "list" }
  | { op: "info"; group: string }
  | { op: "delete"; group: string }
  | { op: "reset"; group: string; to: SubscribeFrom }
  | { op: "fetch"; group: string; request: FetchRequest }
  | { op: "settle"; group: string; request: SettleRequest }
  | { op: "claim"; group: string; member: string; minIdleMs: number; max: number }
  | { op: "replay"; group: string; from?: number | undefined; limit?: number | undefined };

/** What each call answers. */
export interface GroupReplies {
  create: { created: boolean; info: GroupInfo };
  list: { groups: GroupInfo[] };
  info: GroupInfo;
  delete: { deleted: true; closedMembers: number };
  reset: GroupInfo;
  /** Jobs as JSON text (an array), so bodies cross the RPC boundary as stored. */
  fetch: { jobsJson: string; count: number };
  settle: { settled: number };
  claim: { jobsJson: string; count: number };
  replay: { replayed: number; read: number; next: number };
}
