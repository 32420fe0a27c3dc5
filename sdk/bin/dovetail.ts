#!/usr/bin/env node
/**
 * `dovetail`: the command line for a Dovetail bus, built on the SDK. Runs directly with
 * Node >= 24 (type stripping): `node sdk/bin/dovetail.ts --help`.
 *
 * This file only starts it: the dispatcher is sdk/src/cli/main.ts, each command a module in
 * sdk/src/cli/commands/ listed in sdk/src/cli/registry.ts; exit codes in sdk/src/cli/errors.ts.
 */
import { main } from "../src/cli/main.ts";

// A reader that goes away (`dovetail sub t | head -1`) is not an error of ours: stop quietly.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(0);
  throw error;
});

process.exitCode = await main(process.argv.slice(2));
