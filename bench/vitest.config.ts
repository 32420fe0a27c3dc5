// The harness's own checks: `npx vitest run --config bench/vitest.config.ts`.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["bench/test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
