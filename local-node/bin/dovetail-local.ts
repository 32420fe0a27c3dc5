#!/usr/bin/env node
/**
 * `dovetail-local`: run relays and bridges and look at rings on this host.
 * `dovetail-local --help` lists the commands, `dovetail-local <command> --help` their options.
 *
 * This file only starts it: the dispatcher is local-node/src/cli/main.ts, each command a module
 * in local-node/src/cli/commands/ listed in local-node/src/cli/registry.ts.
 * Exit codes: 0 ok (or stopped by a signal), 1 the ring, relay, bridge or edge failed, 2 usage.
 */
import { main } from "../src/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
