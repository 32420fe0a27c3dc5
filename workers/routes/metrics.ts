/**
 * `GET /metrics`: the bus's metrics in the Prometheus text format (docs/observability.md).
 *
 * - With a tenant credential that has `admin:>`: that tenant's topics, groups and refusals
 *   (`?format=json`: as JSON, protocol/metrics.ts `TenantMetrics`).
 * - With the deployment's metrics token (the secret `DOVETAIL_METRICS_TOKEN`, for the operator's
 *   Prometheus): every tenant, each series labelled `tenant`, plus the auth failures that name no
 *   tenant. Without the secret set, there is no operator view.
 *
 * The figures come from the Directories (objects/directory.ts), which the topics report to every
 * few seconds; a scrape is one Directory read per tenant, never a topic wake-up.
 *
 * @example
 * app.route("/metrics", metricsRoutes());
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { DEPLOYMENT_DIRECTORY } from "../../protocol/metrics.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { flushGatewayCounts } from "../metrics/gateway-counts.ts";
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus, type TenantView } from "../metrics/prometheus.ts";
import { auth } from "../middleware/auth.ts";
import { permit } from "../middleware/permissions.ts";
import { rateLimit } from "../middleware/rate-limit.ts";
import { directoryStub } from "../topic-stub.ts";

/** Tenants read at once for the operator's view. */
const TENANT_PARALLELISM = 16;

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Is `presented` the deployment's metrics token? Compares digests, in time independent of where they differ. */
async function isOperatorToken(presented: string, secret: string | undefined): Promise<boolean> {
  if (!secret) return false;
  const [a, b] = await Promise.all([sha256(presented), sha256(secret)]);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function prometheus(c: Context<GatewayEnv>, text: string): Response {
  return c.body(text, 200, { "Content-Type": PROMETHEUS_CONTENT_TYPE, "Cache-Control": "no-store" });
}

/** The operator's view when the request carries the deployment's metrics token; else on to the tenant's. */
function operatorView(): MiddlewareHandler<GatewayEnv> {
  return async function operatorView(c, next) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(c.req.header("Authorization") ?? "");
    if (!m || !(await isOperatorToken(m[1]!, c.env.DOVETAIL_METRICS_TOKEN))) return next();
    await flushGatewayCounts(c.env);
    const deployment = directoryStub(c.env, DEPLOYMENT_DIRECTORY);
    const [tenants, own] = await Promise.all([deployment.tenants(), deployment.metrics()]);
    const views: TenantView[] = [];
    for (let i = 0; i < tenants.length; i += TENANT_PARALLELISM) {
      const slice = tenants.slice(i, i + TENANT_PARALLELISM);
      const read = await Promise.all(slice.map((t) => directoryStub(c.env, t).metrics()));
      for (let j = 0; j < read.length; j++) views.push({ tenant: slice[j]!, metrics: read[j]! });
    }
    return prometheus(c, renderPrometheus(views, own.gateway));
  };
}

/** `GET /metrics`, mounted at `/metrics`. */
export function metricsRoutes(): Hono<GatewayEnv> {
  const metrics = new Hono<GatewayEnv>();
  metrics.get("/", operatorView(), auth(), rateLimit(), permit("admin", null), async function tenantView(c) {
    await flushGatewayCounts(c.env);
    const tenant = await directoryStub(c.env, c.get("tenant")).metrics();
    // `?format=json`: the same figures as data (`dovetail top`, the admin client).
    if (c.req.query("format") === "json") return c.json(tenant, 200, { "Cache-Control": "no-store" });
    return prometheus(c, renderPrometheus([{ tenant: null, metrics: tenant }]));
  });
  return metrics;
}
