/**
 * The gateway: a Hono app in front of every topic. Order of middleware is the order of checks:
 * tenant/auth first, then routes (which validate input and route to the topic object).
 */
import { Hono } from "hono";
import { PROTOCOL_VERSION } from "../sdk/src/protocol.ts";
import type { GatewayEnv } from "./gateway-env.ts";
import { notFound, onError } from "./middleware/errors.ts";
import { tenant } from "./middleware/tenant.ts";
import { topicRoutes } from "./routes/topics.ts";

export const VERSION = "0.1.0";

export function createApp(): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(onError);
  app.notFound(notFound);

  app.get("/healthz", (c) => c.json({ ok: true, version: VERSION, protocol: PROTOCOL_VERSION }));
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
      },
    }),
  );

  app.use("/v1/*", tenant());
  app.route("/v1/topics", topicRoutes());
  return app;
}
