/**
 * Topic naming rules, shared by the gateway, the topic object and clients so that a name the SDK
 * accepts is a name the bus accepts.
 *
 * A topic name is 1 to 200 characters of `A-Z a-z 0-9 _ - ~ .` and `/`. Dots and slashes separate
 * segments: a name may not start or end with one, nor hold an empty segment (`a..b`, `a//b`).
 * Names are case-sensitive. Examples: `agents.events`, `team-a/jobs.done`, `chat_42`.
 */
export const MAX_TOPIC_NAME_LENGTH = 200;

const TOPIC_NAME = /^[A-Za-z0-9_~-]+(?:[./][A-Za-z0-9_~-]+)*$/;

/** Why `name` is not a valid topic name, or `null` when it is. */
export function topicNameProblem(name: unknown): string | null {
  if (typeof name !== "string") return "topic name must be a string";
  if (name.length === 0) return "topic name must not be empty";
  if (name.length > MAX_TOPIC_NAME_LENGTH) return `topic name is longer than ${MAX_TOPIC_NAME_LENGTH} characters`;
  if (!TOPIC_NAME.test(name)) {
    return "topic name may hold only A-Z a-z 0-9 _ - ~ . / and may not start, end or repeat . or /";
  }
  return null;
}

/**
 * `true` when `name` is a valid topic name.
 *
 * @example
 * isTopicName("agents.events") // true
 * isTopicName("../etc")        // false
 */
export function isTopicName(name: unknown): name is string {
  return topicNameProblem(name) === null;
}
