/**
 * Every `dovetail` command, one line each. To add a command: write `commands/<name>.ts`
 * exporting a `defineCommand({ name: "groups ls", ... })`, and list it here. Multi-word names
 * form groups (`dovetail groups --help` lists `groups ls`, `groups info`, ...) by themselves;
 * a group may add a paragraph to its help in GROUP_DESCRIPTIONS. Order here is the order of
 * `dovetail --help`.
 */
import type { Command } from "./command.ts";
import { agentsLs } from "./commands/agents-ls.ts";
import { agentsWatch } from "./commands/agents-watch.ts";
import { bench } from "./commands/bench.ts";
import { consume } from "./commands/consume.ts";
import { dlqReplay } from "./commands/dlq-replay.ts";
import { groupsInfo } from "./commands/groups-info.ts";
import { groupsLs } from "./commands/groups-ls.ts";
import { groupsReset } from "./commands/groups-reset.ts";
import { groupsRm } from "./commands/groups-rm.ts";
import { info } from "./commands/info.ts";
import { keysCreate } from "./commands/keys-create.ts";
import { keysList } from "./commands/keys-list.ts";
import { keysRevoke } from "./commands/keys-revoke.ts";
import { mailInbox } from "./commands/mail-inbox.ts";
import { mailSearch } from "./commands/mail-search.ts";
import { mailSend } from "./commands/mail-send.ts";
import { mailThread } from "./commands/mail-thread.ts";
import { pub } from "./commands/pub.ts";
import { read } from "./commands/read.ts";
import { sub } from "./commands/sub.ts";
import { subsInfo } from "./commands/subs-info.ts";
import { subsLs } from "./commands/subs-ls.ts";
import { subsRm } from "./commands/subs-rm.ts";
import { topicsLs } from "./commands/topics-ls.ts";
import { topicsDurability } from "./commands/topics-durability.ts";
import { topicsRetention } from "./commands/topics-retention.ts";
import { topicsRm } from "./commands/topics-rm.ts";
import { top } from "./commands/top.ts";

export const COMMANDS: readonly Command[] = [
  pub,
  sub,
  read,
  info,
  topicsLs,
  topicsRm,
  topicsRetention,
  topicsDurability,
  consume,
  groupsLs,
  groupsInfo,
  groupsReset,
  groupsRm,
  dlqReplay,
  agentsLs,
  agentsWatch,
  mailSend,
  mailInbox,
  mailSearch,
  mailThread,
  subsLs,
  subsInfo,
  subsRm,
  bench,
  top,
  keysCreate,
  keysList,
  keysRevoke,
];

/** Optional paragraph for `dovetail <group> --help`. */
export const GROUP_DESCRIPTIONS: Readonly<Record<string, string>> = {
  topics: "Lists, deletes and configures the topics of your tenant.",
  groups: `Inspects and manages the consumer groups of a topic (docs/groups.md); dovetail consume joins
one. reset and rm need admin on the topic.`,
  dlq: `Dead letters: messages a consumer group gave up on (past its max deliver, or terminated),
copied to its dead-letter topic (<topic>.dlq by default). Read them with dovetail read or sub.`,
  agents: `The agent registry (docs/agents.md): who is registered and present, and their lifecycle events.
Needs subscribe on _agents.events.`,
  mail: `Agent mail (docs/mail.md): messages between the registered agents of your tenant, their inboxes,
threads and full-text search. Reading an agent's mail needs subscribe on _mail.<agent>, sending as
it publish on _mail.<agent>.`,
  subs: `Durable Streams subscriptions (docs/streams.md "Subscriptions"): the durable cursors that wake a
serverless agent by webhook or wake event. Create them with the HTTP API or the SDK
(bus.streamSubscriptions()).`,
  keys: `Manages the API keys of your tenant through the admin API. Needs a token with the scope admin:>
(other tokens get "permission denied", exit 4). Keys are created in the tenant of that token.`,
};
