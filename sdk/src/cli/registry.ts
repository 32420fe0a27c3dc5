/**
 * Every `dovetail` command, one line each. To add a command: write `commands/<name>.ts`
 * exporting a `defineCommand({ name: "groups ls", ... })`, and list it here. Multi-word names
 * form groups (`dovetail groups --help` lists `groups ls`, `groups info`, ...) by themselves;
 * a group may add a paragraph to its help in GROUP_DESCRIPTIONS. Order here is the order of
 * `dovetail --help`.
 */
import type { Command } from "./command.ts";
import { bench } from "./commands/bench.ts";
import { info } from "./commands/info.ts";
import { keysCreate } from "./commands/keys-create.ts";
import { keysList } from "./commands/keys-list.ts";
import { keysRevoke } from "./commands/keys-revoke.ts";
import { pub } from "./commands/pub.ts";
import { read } from "./commands/read.ts";
import { sub } from "./commands/sub.ts";
import { topicsLs } from "./commands/topics-ls.ts";
import { topicsRetention } from "./commands/topics-retention.ts";
import { topicsRm } from "./commands/topics-rm.ts";

export const COMMANDS: readonly Command[] = [pub, sub, read, info, topicsLs, topicsRm, topicsRetention, bench, keysCreate, keysList, keysRevoke];

/** Optional paragraph for `dovetail <group> --help`. */
export const GROUP_DESCRIPTIONS: Readonly<Record<string, string>> = {
  topics: "Lists, deletes and configures the topics of your tenant.",
  keys: `Manages the API keys of your tenant through the admin API. Needs a token with the scope admin:>
(other tokens get "permission denied", exit 4). Keys are created in the tenant of that token.`,
};
