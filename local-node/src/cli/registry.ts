/**
 * Every `dovetail-local` command, one line each, in the order `dovetail-local --help` lists them.
 * To add one: a module in `commands/` exporting a `defineCommand(...)`, and a line here.
 */
import type { Command } from "./command.ts";
import { bridge } from "./commands/bridge.ts";
import { create } from "./commands/create.ts";
import { relay } from "./commands/relay.ts";
import { stat } from "./commands/stat.ts";
import { tail } from "./commands/tail.ts";
import { unlink } from "./commands/unlink.ts";

export const COMMANDS: readonly Command[] = [stat, create, tail, unlink, relay, bridge];
