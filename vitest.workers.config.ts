// Tests that touch the gateway or topic objects run inside workerd (@cloudflare/vitest-plugin),
// against the same wrangler.toml that `npm run dev` and `wrangler deploy` use.
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      // A JWT secret for tests that mint tokens (a deployment sets its own: docs/security.md), a
      // pattern subscription limit small enough for a test to reach (test/workers/patterns.test.ts),
      // mail's per-agent refill slowed down so that its rate-limit test sees refusals on a slow machine,
      // and the operator's metrics token (docs/observability.md).
      miniflare: {
        bindings: {
          DOVETAIL_JWT_SECRET: "workers-tests-jwt-secret-0123456789abcdef",
          PATTERN_MAX_TOPICS: "5",
          MAIL_RATE_PER_SECOND: "5",
          DOVETAIL_METRICS_TOKEN: "workers-tests-metrics-token",
        },
      },
    }),
  ],
  test: {
    include: ["test/workers/**/*.test.ts"],
    // The gateway's request log lines (one JSON line per request, docs/observability.md) are not
    // printed under the tests that caused them; test/workers/logs.test.ts reads them itself.
    onConsoleLog: (log) => !/^\{"level":"(info|warn)","msg":"(request|socket)"/.test(log),
    testTimeout: 60_000,
  },
});
