/**
 * The parts a Topic object is made of. `Topic` (objects/topic.ts) is a host: it owns the SQL
 * handle, the commit queue, the sockets and the one alarm, and it calls each registered module's
 * hooks. A feature is a module registered in `Topic.#open()`, not another branch in `Topic`:
 * the fan-out, retention, credential expiry, the connection policy, the Directory reporter and
 * the Durable Streams adapter are modules today; consumer groups and indexes will be.
 *
 * Every hook is optional. Hooks run in registration order.
 */
import type { ClientFrame } from "../protocol/frames.ts";
import type { SocketGrant } from "../protocol/grant.ts";
import type { CommittedBatch } from "./commit-queue.ts";
import type { SocketAttachment } from "./fanout.ts";

export interface TopicModule {
  /**
   * Before a write (publish, append) is admitted. Throw to refuse it; return a promise to make
   * the write wait (only the first write of a new topic does: the Directory lists it first).
   */
  beforeWrite?(): Promise<void> | void;
  /** After each group commit, in the same turn as the commit. */
  onCommit?(batch: CommittedBatch): void;
  /** A client socket was accepted (its attachment holds its grant). */
  onSocketOpened?(ws: WebSocket, attachment: SocketAttachment): void;
  /** A client socket is gone: closed by either side, errored, or closed by policy. Called once per socket. */
  onSocketGone?(ws: WebSocket, attachment: SocketAttachment): void;
  /** When this module next needs the alarm (ms since the epoch), or null. Asked often: keep it cheap. */
  nextDeadline?(now: number): number | null;
  /** The alarm fired: do what is due by `now`. */
  onAlarm?(now: number): Promise<void> | void;
  /** The topic is being deleted: forget in-memory state (storage is removed after every module ran). */
  onDelete?(): Promise<void> | void;
  /**
   * Client frame types this module answers (the topic itself answers publish, subscribe, credit
   * and unsubscribe). A frame of one of these types goes to {@link onFrame}; what it throws or
   * rejects with is sent back as an `error` frame with the frame's id.
   */
  readonly frameTypes?: readonly ClientFrame["type"][];
  onFrame?(ws: WebSocket, grant: SocketGrant, frame: ClientFrame): Promise<void> | void;
}
