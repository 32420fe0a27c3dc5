// npm `install` hook: build the Node-API addon from source with node-gyp (bundled with npm, on
// PATH inside npm scripts). Linux only: the ring needs /dev/shm and futex. On other systems the
// package installs without it (so `npm ci` works on a macOS laptop) and Ring.* throws on load.
// Plain .mjs so it runs on whatever Node runs npm (20 on this machine).
import { spawnSync } from "node:child_process";

if (process.platform !== "linux") {
  console.warn(`@dovetail/local-node: skipping the native addon on ${process.platform} (Linux only)`);
  process.exit(0);
}
// node-gyp needs a C compiler, make and python3: say which is missing in one line, before the
// compiler's own wall of text.
const missing = [
  ["cc", "a C compiler (Debian: build-essential)"],
  ["make", "make (Debian: build-essential)"],
  ["python3", "python3"],
].filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status !== 0);
if (missing.length > 0) {
  console.error(
    `@dovetail/local-node: the native addon needs ${missing.map(([, what]) => what).join(", ")}; install it and run npm install again (Debian: apt-get install -y build-essential python3)`,
  );
  process.exit(1);
}
const result = spawnSync("node-gyp", ["rebuild"], { stdio: "inherit", shell: process.platform === "win32" });
if (result.error) {
  console.error(`@dovetail/local-node: could not run node-gyp: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
