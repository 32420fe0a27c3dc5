/**
 * The topic list (`GET /v1/topics`): one entry per topic as the tenant's Directory knows it, a
 * page at a time. The Directory object builds it and the SDK reads it.
 */

/** A topic as the Directory knows it. Stats are as of `reportedAt` (at most a few seconds old while active). */
export interface TopicEntry {
  name: string;
  /** When the topic was created (ms since the epoch). */
  createdAt: number;
  /** Last write, as last reported. */
  lastActive: number;
  head: number;
  messages: number;
  bytes: number;
  subscribers: number;
  reportedAt: number;
}

/** One page of the list. */
export interface TopicPage {
  topics: TopicEntry[];
  /** Pass as `cursor` (the Directory's `after`) for the next page; null on the last page. */
  cursor: string | null;
}
