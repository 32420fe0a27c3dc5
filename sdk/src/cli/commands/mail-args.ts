/** Shared by the `dovetail mail …` commands: agent and thread arguments checked offline, and a message line. */
import type { MailMessage } from "../../index.ts";
import { agentIdProblem } from "../../../../protocol/agents.ts";
import { THREAD_ID } from "../../../../protocol/mail.ts";
import { UsageError } from "../errors.ts";
import { isoTime } from "../output.ts";

/** An agent id argument (protocol/agents.ts), or a usage error. */
export function agentArgument(value: string, what = "agent"): string {
  const problem = agentIdProblem(value);
  if (problem) throw new UsageError(`${what} ${JSON.stringify(value)}: ${problem}`);
  return value;
}

/** A thread id argument, or a usage error. */
export function threadArgument(value: string): string {
  if (!THREAD_ID.test(value)) throw new UsageError(`thread ${JSON.stringify(value)}: a thread id is 1–128 characters of A-Z a-z 0-9 _ . : -`);
  return value;
}

/** Comma-separated agent ids (`--to a,b --to c`). */
export function agentList(values: readonly string[] | undefined, flag: string): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(","))
    .filter((v) => v !== "")
    .map((v) => agentArgument(v, flag));
}

/** One message as a line: id, time, state, sender, subject. */
export function mailLine(m: MailMessage): string {
  const state = m.recipient ? (m.recipient.ackedAt ? "acked" : m.recipient.readAt ? "read" : m.ackRequired ? "NEW!" : "new") : "";
  return `${String(m.id).padStart(6)}  ${isoTime(m.createdAt)}  ${state.padEnd(5)}  ${m.from.padEnd(16)}  ${m.subject}  [thread ${m.threadId}]`;
}
