/**
 * `dovetail consume <topic> <group>`: join a consumer group, print each job and ack it (or nack
 * it with `--nack`), until Ctrl-C or `--limit` (docs/groups.md).
 *
 * The member takes `--prefetch` jobs at a time, 1 by default: a job the bus sent ahead and this
 * command never printed is handed back when it exits, and that counts as a delivery (with
 * `--max-deliver 1` it would become a dead letter), so by default at most one job is sent ahead.
 */
import type { Consumer } from "../../consumer-handle.ts";
import type { Job } from "../../consumer.ts";
import { DovetailError } from "../../index.ts";
import {
  type GroupSettingsInput,
  MAX_ACK_WAIT_MS,
  MAX_GROUP_MAX_ACK_PENDING,
  MAX_MAX_DELIVER,
  MAX_MEMBER_MAX_ACK_PENDING,
  MIN_ACK_WAIT_MS,
} from "../../../../protocol/groups.ts";
import { durationOption, durationText, integerOption, topicArgument } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openBus } from "../connection.ts";
import { describe, EXIT, UsageError } from "../errors.ts";
import { dataText, messageJson } from "../output.ts";
import { groupArgument, positionOption } from "./group-args.ts";

/** Reconnect attempts before giving up with exit 3 (as `sub`). */
const CONSUME_MAX_ATTEMPTS = 10;
/** The reason a `--nack` gives: it travels with a dead letter (`dovetail-dlq-error`). */
export const NACK_REASON = "nacked by dovetail consume --nack";

/** A job as one line of text: `offset 3, delivery 2, key user-1: {"resize":"cat.png"}`. */
export function jobText(job: Job): string {
  const parts = [`offset ${job.offset}`, `delivery ${job.delivery}`];
  if (job.key !== undefined) parts.push(`key ${job.key}`);
  if (job.priority > 0) parts.push(`priority ${job.priority}`);
  return `${parts.join(", ")}: ${dataText(job.data)}`;
}

/** A job as the CLI's JSON shows it: a message (`messageJson`) with its delivery and priority. */
export function jobJson(job: Job): Record<string, unknown> {
  const { offset, time, ...rest } = messageJson(job);
  return { offset, time, delivery: job.delivery, priority: job.priority, ...(job.expiresAt !== undefined ? { expiresAt: job.expiresAt } : {}), ...rest };
}

export const consume = defineCommand({
  name: "consume",
  args: ["<topic>", "<group>"],
  summary: "join a consumer group: print each job and ack it (--nack: nack it)",
  description: `Joins consumer group <group> of <topic> (creating it if it does not exist) and prints each job
it is handed (offset, delivery, key, data), then acks it; with --nack it nacks it instead, so the
group delivers it again, and past the group's max deliver sends it to the dead-letter topic. Runs
until Ctrl-C (exit 130: the job in hand is settled first, then the member leaves the group), or
until --limit jobs were printed.

--create-start, --ack-wait, --max-deliver, --max-ack-pending and --ordered-by-key are the group's
settings when this creates it; a group that exists with other settings is a conflict (exit 1).
The member holds --prefetch jobs at a time (default 1). A job it was handed and did not print
(when it exits, the bus may have sent the next one already) is delivered again, and that counts
as a delivery: past the group's max deliver it becomes a dead letter.`,
  json: `one job per line: {"offset","time","delivery","priority","key","headers","data"} ("bytes" in base64 for binary)`,
  options: {
    "create-start": { type: "string", value: "F", help: "where a new group starts: earliest, latest (default), an offset or an ISO date" },
    "ack-wait": {
      type: "string",
      value: "D",
      help: `a job not settled within D is delivered again: ${durationText(MIN_ACK_WAIT_MS)} to ${durationText(MAX_ACK_WAIT_MS)} (default 30s)`,
    },
    "max-deliver": { type: "string", value: "N", help: `deliveries before a message is a dead letter, 1 to ${MAX_MAX_DELIVER} (default 5)` },
    "max-ack-pending": { type: "string", value: "N", help: `jobs in flight to the whole group, 1 to ${MAX_GROUP_MAX_ACK_PENDING} (default 10000)` },
    "ordered-by-key": { type: "boolean", help: "a new group hands out a key's messages one at a time, in offset order" },
    prefetch: { type: "string", value: "N", help: `jobs this member holds at once, 1 to ${MAX_MEMBER_MAX_ACK_PENDING} (default 1)` },
    limit: { type: "string", value: "N", help: "exit 0 after N jobs" },
    nack: { type: "boolean", help: `nack each job instead of acking it (reason "${NACK_REASON}")` },
  },
  async run({ values, positionals, out }) {
    const topic = topicArgument(positionals[0]!);
    const group = groupArgument(positionals[1]!);
    const create: GroupSettingsInput = {};
    if (values["create-start"] !== undefined) create.start = positionOption(values["create-start"], "--create-start");
    if (values["ack-wait"] !== undefined) {
      const ms = durationOption(values["ack-wait"], "--ack-wait");
      if (ms < MIN_ACK_WAIT_MS || ms > MAX_ACK_WAIT_MS) {
        throw new UsageError(
          `--ack-wait: expected a duration from ${durationText(MIN_ACK_WAIT_MS)} to ${durationText(MAX_ACK_WAIT_MS)}, got ${JSON.stringify(values["ack-wait"])}`,
        );
      }
      create.ackWaitMs = ms;
    }
    if (values["max-deliver"] !== undefined) create.maxDeliver = integerOption(values["max-deliver"], "--max-deliver", { min: 1, max: MAX_MAX_DELIVER });
    if (values["max-ack-pending"] !== undefined) {
      create.maxAckPending = integerOption(values["max-ack-pending"], "--max-ack-pending", { min: 1, max: MAX_GROUP_MAX_ACK_PENDING });
    }
    if (values["ordered-by-key"]) create.orderedByKey = true;
    const prefetch = values.prefetch === undefined ? 1 : integerOption(values.prefetch, "--prefetch", { min: 1, max: MAX_MEMBER_MAX_ACK_PENDING });
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : integerOption(values.limit, "--limit", { min: 1 });
    const settle = values.nack ? (job: Job) => job.nack({ reason: NACK_REASON }) : (job: Job) => job.ack();

    const { bus, url } = openBus(values, CONSUME_MAX_ATTEMPTS);
    const consumer: Consumer = bus.consume(topic, group, { maxAckPending: Math.min(prefetch, limit), ...(Object.keys(create).length > 0 ? { create } : {}) });
    // Ctrl-C: a job being settled is settled first; a consumer waiting for one ends at once.
    let interrupted = false;
    let settling = false;
    const onInterrupt = () => {
      interrupted = true;
      if (!settling) consumer.close();
    };
    process.once("SIGINT", onInterrupt);
    let handled = 0;
    try {
      for await (const job of consumer) {
        out.print(job, jobText, jobJson);
        settling = true;
        try {
          await settle(job);
        } catch (error) {
          // After a reconnect the group has given the job to another member: say so, carry on.
          if (!(error instanceof DovetailError && error.code === "not_held")) throw error;
          process.stderr.write(`dovetail: offset ${job.offset} (delivery ${job.delivery}) was not settled: ${describe(error, url)}\n`);
        } finally {
          settling = false;
        }
        if (++handled >= limit || interrupted) break;
      }
      return interrupted ? EXIT.interrupted : EXIT.ok;
    } finally {
      process.off("SIGINT", onInterrupt);
      consumer.close();
      await bus.close({ force: true });
    }
  },
});
