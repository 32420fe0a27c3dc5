/**
 * What the `dovetail subs …` commands share: the subscription id argument, checked offline (a bad
 * id is a usage error, exit 2). Not a command itself: registry.ts does not list it.
 */
import { SUBSCRIPTION_ID } from "../../../../protocol/ds-subscriptions.ts";
import { UsageError } from "../errors.ts";

/**
 * A Durable Streams subscription id (1–128 of A-Z a-z 0-9 _ . -).
 *
 * @example
 * subscriptionArgument("orders-agent") // "orders-agent"
 */
export function subscriptionArgument(value: string): string {
  if (!SUBSCRIPTION_ID.test(value)) throw new UsageError(`subscription ${JSON.stringify(value)}: expected 1–128 characters of A-Z a-z 0-9 _ . -`);
  return value;
}
