// Node-side tests: the SDK against a real bus process, local-node, the conformance suite.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/node/**/*.test.ts", "sdk/test/**/*.test.ts", "local-node/test/**/*.test.ts", "bench/test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Each file may start its own bus; two cores do not gain from more parallel files.
    fileParallelism: false,
  },
});
