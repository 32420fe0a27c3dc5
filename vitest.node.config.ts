// Node-side tests: the SDK against a real bus process, local-node, the conformance suite.
import { defineConfig } from "vitest/config";

// In this repository `@dovetail/sdk` and `@dovetail/local-node` resolve to their TypeScript sources
// through the `@dovetail/source` export condition (decision 025): here for the test files, and
// through NODE_OPTIONS for the Node processes the tests start (CLIs, examples, children).
const SOURCE_CONDITION = "@dovetail/source";

export default defineConfig({
  ssr: { resolve: { conditions: [SOURCE_CONDITION] } },
  test: {
    env: { NODE_OPTIONS: [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(" ") },
    include: ["test/node/**/*.test.ts", "sdk/test/**/*.test.ts", "local-node/test/**/*.test.ts", "bench/test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Each file may start its own bus; two cores do not gain from more parallel files.
    fileParallelism: false,
  },
});
