/**
 * Durability levels: what a topic's acknowledgement promises and when its subscribers see a
 * message (docs/durability.md, docs/decisions/035-durability-levels.md). A level belongs to a
 * topic, not to one publish: offsets order the log, so a message delivered before its commit
 * could not overtake one that waits for it.
 *
 * | level    | stored | delivered to subscribers | publish acked |
 * |----------|--------|--------------------------|---------------|
 * | `sync`   | yes    | after the commit         | after the commit (the default) |
 * | `async`  | yes    | before the commit        | after the commit |
 * | `memory` | no     | at once                  | on receipt |
 */
export const DURABILITY_LEVELS = ["sync", "async", "memory"] as const;

export type Durability = (typeof DURABILITY_LEVELS)[number];

/** The level of a topic nobody configured. */
export const DEFAULT_DURABILITY: Durability = "sync";

export function isDurability(value: unknown): value is Durability {
  return value === "sync" || value === "async" || value === "memory";
}
