/**
 * Health (docs/observability.md, "Health"):
 *
 * - `GET /healthz`: the gateway answers and storage answers. It reads the deployment's Directory
 *   (a Durable Object SQLite read, the same path every topic lookup takes) and says how long that
 *   took; 503 with `ok: false` when it fails. The answer is kept per isolate for
 *   {@link HEALTH_CACHE_MS}, so a flood of probes costs the Directory one read per isolate a second.
 * - `GET /readyz`: whether this bus should be sent traffic: storage answers and, on the local bus
 *   (scripts/dev.mjs binds `DOVETAIL_STORAGE`), the state volume has more free space than the
 *   reserve below which messages are refused (objects/storage-guard.ts). 503 otherwise, naming the
 *   failed check. test/support/bus-process.ts waits for it.
 *
 * Both are public (no credential): they say nothing about tenants.
 */
import { Hono, type Context } from "hono";
import { PROTOCOL_VERSION } from "../../protocol/frames.ts";
import { DEPLOYMENT_DIRECTORY } from "../../protocol/metrics.ts";
import type { StorageReport } from "../../objects/storage-guard.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { authIsOff } from "../middleware/auth.ts";
import { directoryStub } from "../topic-stub.ts";

/** How long an isolate reuses its last storage check. */
export const HEALTH_CACHE_MS = 1_000;

export interface StorageCheck {
  ok: boolean;
  /** Round-trip time of the Directory read. */
  ms: number;
  error?: string;
}

let last: { at: number; check: Promise<StorageCheck> } | null = null;

/** A Directory read, at most once per {@link HEALTH_CACHE_MS} per isolate. */
function storageCheck(c: Context<GatewayEnv>): Promise<StorageCheck> {
  const now = Date.now();
  if (last && now - last.at < HEALTH_CACHE_MS) return last.check;
  const check = directoryStub(c.env, DEPLOYMENT_DIRECTORY)
    .ping()
    .then(
      () => ({ ok: true, ms: Date.now() - now }),
      (e: unknown) => ({ ok: false, ms: Date.now() - now, error: e instanceof Error ? e.message : String(e) }),
    );
  last = { at: now, check };
  return check;
}

/** The local bus's disk: free space above the reserve (null where nothing measures it). */
async function diskCheck(c: Context<GatewayEnv>): Promise<{ ok: boolean; free: number; reserve: number } | null> {
  const binding = (c.env as { DOVETAIL_STORAGE?: Fetcher }).DOVETAIL_STORAGE;
  if (!binding) return null;
  const report = (await (await binding.fetch("http://storage/")).json()) as StorageReport;
  return { ok: report.free > report.reserve, free: report.free, reserve: report.reserve };
}

export function healthRoutes(version: string): Hono<GatewayEnv> {
  const health = new Hono<GatewayEnv>();
  // `auth: "off"` (and the X-Dovetail-Auth header) tell anyone probing that this bus is open.
  health.get("/healthz", async (c) => {
    const authMode = authIsOff(c.env) ? "off" : "on";
    const storage = await storageCheck(c);
    return c.json({ ok: storage.ok, version, protocol: PROTOCOL_VERSION, auth: authMode, storage }, storage.ok ? 200 : 503, {
      "X-Dovetail-Auth": authMode,
      "Cache-Control": "no-store",
    });
  });
  health.get("/readyz", async (c) => {
    const [storage, disk] = await Promise.all([storageCheck(c), diskCheck(c)]);
    const ready = storage.ok && (disk?.ok ?? true);
    return c.json({ ready, storage, ...(disk ? { disk } : {}) }, ready ? 200 : 503, { "Cache-Control": "no-store" });
  });
  return health;
}
