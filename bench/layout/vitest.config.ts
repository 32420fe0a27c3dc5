// Runs the storage layout measurement inside workerd: npx vitest run --config bench/layout/vitest.config.ts
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
  test: { include: ["bench/layout/*.bench.test.ts"], testTimeout: 600_000 },
});
