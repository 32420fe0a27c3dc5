/**
 * AgentIndex: the registry's records in memory, with the lookups the Registry object answers
 * (objects/registry.ts): by id, by capability, by top-level metadata fields and by presence, a page
 * at a time in id order. A plain class without storage, so it can be tested without an object.
 *
 * Why in memory: a capability lookup must answer within 100 µs for a tenant of 10,000 agents
 * (issue 14). A capability keeps its agents' ids in a sorted array, so a page is a binary search
 * for the cursor and a walk of at most `limit` present entries, with no parsing; SQLite would
 * materialize a row and parse its metadata for each agent answered. The records are loaded from
 * the `ag_agents` table when the object wakes (10,000 records: see docs/agents.md for the time).
 *
 * @example
 * const index = new AgentIndex();
 * index.put(agent);
 * index.query({ capability: "summarize", limit: 10 }); // { agents: [...], cursor: null }
 */
import type { AgentInfo, AgentPage } from "../protocol/agents.ts";

export interface IndexQuery {
  capability?: string;
  meta?: Record<string, string>;
  present: boolean | "any";
  cursor?: string;
  limit: number;
}

/** First position in sorted `ids` whose id is greater than `after` ("" for the start). */
function firstAfter(ids: readonly string[], after: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ids[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(ids: string[], id: string): void {
  const at = firstAfter(ids, id);
  if (ids[at - 1] !== id) ids.splice(at, 0, id);
}

function removeSorted(ids: string[], id: string): void {
  const at = firstAfter(ids, id) - 1;
  if (at >= 0 && ids[at] === id) ids.splice(at, 1);
}

/** Does the top-level metadata field hold this value (scalars compared as text)? */
function metaMatches(meta: Record<string, unknown>, want: Record<string, string>): boolean {
  for (const [field, value] of Object.entries(want)) {
    const v = meta[field];
    if (v === null || typeof v === "object" || v === undefined || String(v) !== value) return false;
  }
  return true;
}

export class AgentIndex {
  readonly #records = new Map<string, AgentInfo>();
  /** Every id, sorted (code-unit order, as SQLite's BINARY collation sorts ASCII ids). */
  readonly #ids: string[] = [];
  /** Capability → the ids that declare it, sorted. */
  readonly #byCapability = new Map<string, string[]>();

  get size(): number {
    return this.#records.size;
  }

  get(id: string): AgentInfo | undefined {
    return this.#records.get(id);
  }

  /** Add or replace a record (its capabilities move in the index). */
  put(agent: AgentInfo): void {
    const old = this.#records.get(agent.id);
    if (old) this.#unindex(old);
    else insertSorted(this.#ids, agent.id);
    this.#records.set(agent.id, agent);
    for (const c of agent.capabilities) {
      let ids = this.#byCapability.get(c);
      if (!ids) this.#byCapability.set(c, (ids = []));
      insertSorted(ids, agent.id);
    }
  }

  remove(id: string): void {
    const old = this.#records.get(id);
    if (!old) return;
    this.#unindex(old);
    this.#records.delete(id);
    removeSorted(this.#ids, id);
  }

  /** Does any registered agent (present or not) declare `capability`? */
  knows(capability: string): boolean {
    return this.#byCapability.has(capability);
  }

  /** Some capabilities agents declare, for an `unknown_capability` message. */
  someCapabilities(max: number): string[] {
    return [...this.#byCapability.keys()].slice(0, max);
  }

  /** The absent agent seen longest ago (it makes room when the tenant is full), or undefined. */
  oldestAbsent(): AgentInfo | undefined {
    let oldest: AgentInfo | undefined;
    for (const a of this.#records.values()) if (!a.present && (!oldest || a.seenAt < oldest.seenAt)) oldest = a;
    return oldest;
  }

  /** A page of matching agents in id order. The caller checked that the capability is known. */
  query(q: IndexQuery): AgentPage {
    const ids = q.capability === undefined ? this.#ids : (this.#byCapability.get(q.capability) ?? []);
    const agents: AgentInfo[] = [];
    for (let i = firstAfter(ids, q.cursor ?? ""); i < ids.length; i++) {
      const a = this.#records.get(ids[i]!)!;
      if (q.present !== "any" && a.present !== q.present) continue;
      if (q.meta && !metaMatches(a.meta, q.meta)) continue;
      if (agents.length === q.limit) return { agents, cursor: agents[q.limit - 1]!.id };
      agents.push(a);
    }
    return { agents, cursor: null };
  }

  #unindex(agent: AgentInfo): void {
    for (const c of agent.capabilities) {
      const ids = this.#byCapability.get(c);
      if (!ids) continue;
      removeSorted(ids, agent.id);
      if (ids.length === 0) this.#byCapability.delete(c);
    }
  }
}
