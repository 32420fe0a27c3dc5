/**
 * What the consumer-group commands (`consume`, `groups ...`, `dlq replay`) share: the group
 * argument and positions in a topic, checked offline (a bad value is a usage error, exit 2),
 * and the words a position is printed with. Not a command itself: registry.ts does not list it.
 */
import { groupNameProblem } from "../../../../protocol/groups.ts";
import type { SubscribeFrom } from "../../../../protocol/subscribe-from.ts";
import { fromOption } from "../args.ts";
import { UsageError } from "../errors.ts";
import { isoTime } from "../output.ts";

/**
 * A group name argument (1–64 of A-Z a-z 0-9 _ -).
 *
 * @example
 * groupArgument("resizers") // "resizers"
 */
export function groupArgument(value: string): string {
  const problem = groupNameProblem(value);
  if (problem) throw new UsageError(`group ${JSON.stringify(value)}: ${problem}`);
  return value;
}

/**
 * A position in a topic as group settings and resets take it: an offset, `earliest`, `latest`,
 * or an ISO date / milliseconds since the epoch (`{ time }`).
 *
 * @example
 * positionOption("earliest", "--to") // "earliest"
 * positionOption("2030-01-01T00:00:00Z", "--to") // { time: 1893456000000 }
 */
export function positionOption(value: string, flag: string): SubscribeFrom {
  const from = fromOption(value, flag);
  return from instanceof Date ? { time: from.getTime() } : from;
}

/** A position in words: `offset 5`, `earliest`, `2030-01-01T00:00:00Z`. */
export function positionText(position: SubscribeFrom): string {
  if (typeof position === "number") return `offset ${position}`;
  if (typeof position === "string") return position;
  return isoTime(position.time);
}
