// npm `install` hook: build the Node-API addon from source with node-gyp (bundled with npm, on
// PATH inside npm scripts). Linux only: the ring needs /dev/shm and futex. On other systems the
// package installs without it (so `npm ci` works on a macOS laptop) and Ring.* throws on load.
// Plain .mjs so it runs on whatever Node runs npm (20 on this machine).
import { spawnSync } from "node:child_process";

if (process.platform !== "linux") {
  console.warn(`@dovetail/local-node: skipping the native addon on ${process.platform} (Linux only)`);
  process.exit(0);
}
const result = spawnSync("node-gyp", ["rebuild"], { stdio: "inherit", shell: process.platform === "win32" });
if (result.error) {
  console.error(`@dovetail/local-node: could not run node-gyp: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
