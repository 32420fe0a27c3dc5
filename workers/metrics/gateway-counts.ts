/**
 * The gateway's counters (docs/observability.md): rate-limit refusals and auth failures, by
 * reason. A Worker isolate has no storage, so each isolate sums its counts in memory and sends
 * them to a Directory at most every {@link GATEWAY_FLUSH_MS} (in the `waitUntil` of the request
 * that counted first), never one write per refusal: a flood of bad credentials costs one RPC per
 * isolate per interval. Counts about a tenant (its refusals, `forbidden`) go to the tenant's
 * Directory; failures with no trusted tenant (a missing, malformed or unknown credential) go to
 * the deployment's ({@link DEPLOYMENT_DIRECTORY}).
 *
 * @example
 * countAuthFailure(c, "jwt", null);          // deployment-wide
 * countRateLimited(c, "api_key_requests");   // the caller's tenant
 */
import type { Context } from "hono";
import { DEPLOYMENT_DIRECTORY, addCounts, emptyGatewayCounters, type GatewayCounters } from "../../protocol/metrics.ts";
import type { Env } from "../env.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { directoryStub } from "../topic-stub.ts";
import { log } from "../log.ts";

/** Longest an isolate keeps counts before sending them. */
export const GATEWAY_FLUSH_MS = 2_000;

/** Why a credential was refused. */
export type AuthFailure = "missing" | "malformed" | "too_long" | "api_key" | "jwt" | "unrecognised" | "forbidden";
/** Why the gateway refused a request for its rate. */
export type GatewayRateLimit = "api_key_requests" | "jwt_requests";

const pending = new Map<string, GatewayCounters>();
let scheduled = false;

function counts(directory: string): GatewayCounters {
  let c = pending.get(directory);
  if (!c) pending.set(directory, (c = emptyGatewayCounters()));
  return c;
}

function schedule(c: Context<GatewayEnv>): void {
  if (scheduled) return;
  scheduled = true;
  const env = c.env;
  const send = new Promise((r) => setTimeout(r, GATEWAY_FLUSH_MS)).then(() => flushGatewayCounts(env));
  try {
    c.executionCtx.waitUntil(send);
  } catch {
    // No execution context (a unit test calling the app directly): the promise still runs.
  }
}

/** A refused credential; `tenant` when the credential was verified (then the failure is `forbidden`). */
export function countAuthFailure(c: Context<GatewayEnv>, reason: AuthFailure, tenant: string | null): void {
  addCounts(counts(tenant ?? DEPLOYMENT_DIRECTORY).authFailures, { [reason]: 1 });
  schedule(c);
}

/** A request refused for its credential's rate (the tenant is known: the credential was verified). */
export function countRateLimited(c: Context<GatewayEnv>, reason: GatewayRateLimit): void {
  addCounts(counts(c.get("tenant")).rateLimited, { [reason]: 1 });
  schedule(c);
}

/** Send this isolate's counts now (also before `GET /metrics` answers, so it sees its own isolate's). */
export async function flushGatewayCounts(env: Pick<Env, "DIRECTORY">): Promise<void> {
  scheduled = false;
  const batch = [...pending];
  pending.clear();
  await Promise.all(
    batch.map(([directory, c]) =>
      directoryStub(env, directory)
        .addGatewayCounts(c)
        .catch((e: unknown) => log(env as { LOG_LEVEL?: string }, "error", "gateway counts not sent", { directory, error: e })),
    ),
  );
}
