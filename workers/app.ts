/**
 * The gateway: a Hono app in front of every topic. Order of middleware is the order of checks:
 * tenant/auth first, then routes (which validate input and route to the topic object).
 */
import { Hono } from "hono";
import { PROTOCOL_VERSION } from "../protocol/frames.ts";
import type { GatewayEnv } from "./gateway-env.ts";
import { cors } from "./middleware/cors.ts";
import { notFound, onError } from "./middleware/errors.ts";
import { auth } from "./middleware/auth.ts";
import { rateLimit } from "./middleware/rate-limit.ts";
import { adminRoutes } from "./routes/admin.ts";
import { agentRoutes } from "./routes/agents.ts";
import { groupRoutes } from "./routes/groups.ts";
import { mcpRoutes } from "./routes/mcp.ts";
import { patternRoutes } from "./routes/patterns.ts";
import { mailRoutes } from "./routes/mail.ts";
import { requestRoutes } from "./routes/requests.ts";
import { dsSubscriptionRoutes, dsTokenRoutes } from "./routes/ds-subscriptions.ts";
import { streamRoutes } from "./routes/streams.ts";
import { topicRoutes } from "./routes/topics.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { healthRoutes } from "./routes/health.ts";
import { requestLog } from "./middleware/request-log.ts";

export const VERSION = "0.1.0";

export function createApp(): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(onError);
  app.notFound(notFound);
  // First: every request and socket upgrade gets an id and one log line (docs/observability.md).
  app.use("*", requestLog());

  // /healthz (storage answers) and /readyz (and the local disk has room): workers/routes/health.ts.
  app.route("/", healthRoutes(VERSION));
  app.get("/", (c) =>
    c.json({
      name: "dovetail",
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      endpoints: {
        websocket: "/v1/topics/{topic}/ws",
        publish: "POST /v1/topics/{topic}/messages",
        read: "GET /v1/topics/{topic}/messages?from=0&limit=100",
        info: "GET /v1/topics/{topic}",
        patterns: "/v1/patterns/ws?pattern={pattern}",
      },
    }),
  );

  // Prometheus text (docs/observability.md): a tenant's admin, or the operator's metrics token.
  app.route("/metrics", metricsRoutes());

  // Browsers first: preflights carry no credential; every answer gets CORS headers.
  app.use("/v1/*", cors());
  // Durable Streams subscriptions: the JWK Set and the wake-token routes carry no credential
  // (docs/streams.md "Subscriptions"); they are answered before auth.
  app.route("/v1/stream/__ds", dsTokenRoutes());
  // Who (401), how often (429); may they (403) is declared by each route with permit()
  // (workers/middleware/permissions.ts). See docs/security.md.
  app.use("/v1/*", auth());
  app.use("/v1/*", rateLimit());
  app.route("/v1/admin", adminRoutes());
  app.route("/v1/agents", agentRoutes()); // agent registry and presence (docs/agents.md)
  app.route("/v1/patterns", patternRoutes()); // pattern subscriptions (docs/patterns.md)
  app.route("/v1/mail", mailRoutes()); // agent mail (docs/mail.md)
  app.route("/v1/topics", groupRoutes()); // consumer groups (docs/groups.md)
  app.route("/v1/topics", requestRoutes()); // request/reply (docs/requests.md)
  app.route("/v1/topics", topicRoutes());
  app.route("/v1/stream/__ds", dsSubscriptionRoutes()); // before the streams: `__ds` is never a stream
  app.route("/v1/stream", streamRoutes()); // Durable Streams HTTP protocol (docs/streams.md)
  // MCP over Streamable HTTP (docs/mcp.md): the same credentials and limits; each tool checks its scope.
  app.use("/mcp", cors(), auth(), rateLimit());
  app.route("/mcp", mcpRoutes(VERSION));
  return app;
}
