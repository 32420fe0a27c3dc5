import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

// Node-side tests for @dovetail/local-node. Run from the repo root:
//   node_modules/.bin/vitest run --config local-node/vitest.config.ts
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  test: {
    environment: "node",
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    // Multi-process tests spawn several Node processes; on a 2-CPU host parallel files only fight.
    fileParallelism: false,
    // Watchdogs only (a hung child must not hang CI); no test asserts on elapsed time.
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
