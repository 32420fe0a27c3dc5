import { defineConfig } from "vitest/config";
import { fileURLToPath } from "node:url";

// Node-side tests for @dovetail/local-node. Run from the repo root:
//   node_modules/.bin/vitest run --config local-node/vitest.config.ts
//
// `@dovetail/sdk` and this package resolve to their TypeScript sources through the
// `@dovetail/source` export condition, in the tests and in the processes they start (decision 025).
const SOURCE_CONDITION = "@dovetail/source";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  ssr: { resolve: { conditions: [SOURCE_CONDITION] } },
  test: {
    env: { NODE_OPTIONS: [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(" ") },
    environment: "node",
    include: ["test/**/*.test.ts", "src/**/*.test.ts"],
    // Multi-process tests spawn several Node processes; on a 2-CPU host parallel files only fight.
    fileParallelism: false,
    // Watchdogs only (a hung child must not hang CI); no test asserts on elapsed time.
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
