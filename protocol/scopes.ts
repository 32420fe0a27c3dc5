/**
 * Scopes and topic patterns: the ONE matcher that decides whether a credential may act on a
 * topic. The gateway (HTTP routes, WebSocket upgrades, the admin API) and the docs
 * (docs/security.md, "Scopes and topic patterns") all use this file.
 *
 * A scope is `action:pattern` (or a bare `action`, which means `action:>`), where action is
 * `publish`, `subscribe`, `consume` (take work from consumer groups, docs/groups.md) or `admin`.
 *
 * A pattern is a topic name whose segments may be wildcards. Segments are separated by `.` or
 * `/` exactly as in topic names (protocol/topic-name.ts), and separators must match literally:
 * - a literal segment matches itself (case-sensitive);
 * - `*` matches exactly one segment;
 * - `>` as the LAST segment matches one or more remaining segments, whatever separates them.
 *
 * @example
 * topicMatches("agents.*", "agents.planner")      // true
 * topicMatches("agents.*", "agents.planner.logs") // false
 * topicMatches("team-a.>", "team-a.jobs/done")    // true
 * topicMatches("team-a.>", "team-a")              // false (`>` needs at least one segment)
 * topicMatches(">", "anything.at/all")            // true
 */
export const SCOPE_ACTIONS = ["publish", "subscribe", "consume", "admin"] as const;
export type ScopeAction = (typeof SCOPE_ACTIONS)[number];

export interface Scope {
  action: ScopeAction;
  pattern: string;
}

/** Longest pattern accepted (a topic name is at most 200 characters). */
export const MAX_PATTERN_LENGTH = 200;
/** Most scopes one credential may carry. */
export const MAX_SCOPES = 64;

const LITERAL_SEGMENT = /^[A-Za-z0-9_~-]+$/;

/** Why `pattern` is not a valid topic pattern, or `null` when it is. */
export function patternProblem(pattern: unknown): string | null {
  if (typeof pattern !== "string" || pattern.length === 0) return "a topic pattern must be a non-empty string";
  if (pattern.length > MAX_PATTERN_LENGTH) return `a topic pattern is at most ${MAX_PATTERN_LENGTH} characters`;
  const parts = pattern.split(/([./])/);
  for (let k = 0; k < parts.length; k += 2) {
    const segment = parts[k]!;
    if (segment === "*") continue;
    if (segment === ">") {
      if (k !== parts.length - 1) return "`>` may only be the last segment of a pattern";
      continue;
    }
    if (!LITERAL_SEGMENT.test(segment)) {
      return `pattern segment ${JSON.stringify(segment).slice(0, 40)} must be *, > or a topic name segment (A-Z a-z 0-9 _ - ~)`;
    }
  }
  return null;
}

const DOT = 46;
const SLASH = 47;
const STAR = 42;
const GT = 62;

/** End of the segment of `s` that starts at `from` (the index of the next separator, or the length). */
function segmentEnd(s: string, from: number): number {
  let i = from;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT || c === SLASH) break;
  }
  return i;
}

/**
 * Does `pattern` (already valid) match the topic name `topic`? One pass over both strings, no
 * allocation: the Directory matches every new topic against the tenant's pattern subscriptions
 * with it (a fraction of a microsecond per pattern, measured by bench/probe/pattern-match.ts).
 */
export function topicMatches(pattern: string, topic: string): boolean {
  let p = 0;
  let t = 0;
  for (;;) {
    const pe = segmentEnd(pattern, p);
    const wildcard = pe === p + 1 ? pattern.charCodeAt(p) : 0;
    // `>` is always last: it matches when at least one segment of the topic remains.
    if (wildcard === GT) return t < topic.length;
    const te = segmentEnd(topic, t);
    if (wildcard !== STAR) {
      if (pe - p !== te - t) return false;
      for (let i = 0; i < pe - p; i++) if (pattern.charCodeAt(p + i) !== topic.charCodeAt(t + i)) return false;
    }
    if (pe === pattern.length || te === topic.length) return pe === pattern.length && te === topic.length;
    // Separators match literally.
    if (pattern.charCodeAt(pe) !== topic.charCodeAt(te)) return false;
    p = pe + 1;
    t = te + 1;
  }
}

/**
 * Parse one scope string (`publish:agents.*`, `subscribe:>`, `admin`).
 * Returns the scope or a message saying what is wrong with it.
 */
export function parseScope(text: unknown): Scope | string {
  if (typeof text !== "string") return "a scope must be a string";
  const colon = text.indexOf(":");
  const action = colon < 0 ? text : text.slice(0, colon);
  const pattern = colon < 0 ? ">" : text.slice(colon + 1);
  if (!(SCOPE_ACTIONS as readonly string[]).includes(action)) {
    return `scope ${JSON.stringify(text).slice(0, 60)}: action must be one of ${SCOPE_ACTIONS.join(", ")}`;
  }
  const problem = patternProblem(pattern);
  if (problem) return `scope ${JSON.stringify(text).slice(0, 60)}: ${problem}`;
  return { action: action as ScopeAction, pattern };
}

/** Parse a list of scope strings; the first bad one is reported. */
export function parseScopes(texts: readonly unknown[]): Scope[] | string {
  if (texts.length > MAX_SCOPES) return `at most ${MAX_SCOPES} scopes`;
  const out: Scope[] = [];
  for (const t of texts) {
    const s = parseScope(t);
    if (typeof s === "string") return s;
    out.push(s);
  }
  return out;
}

/** The canonical text of a scope (`action:pattern`). */
export function formatScope(scope: Scope): string {
  return `${scope.action}:${scope.pattern}`;
}

/**
 * May a holder of `scopes` perform `action` on `topic`? `topic` undefined means "on every
 * topic": only a scope whose pattern is `>` allows that (used by the admin API).
 */
export function allows(scopes: readonly Scope[], action: ScopeAction, topic?: string): boolean {
  for (const s of scopes) {
    if (s.action !== action) continue;
    if (topic === undefined ? s.pattern === ">" : topicMatches(s.pattern, topic)) return true;
  }
  return false;
}
