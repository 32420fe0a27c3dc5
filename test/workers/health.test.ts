/**
 * `/healthz` and `/readyz` (workers/routes/health.ts) inside workerd: both read the Directory's
 * storage and say so; `/healthz` keeps the fields clients and docs use.
 */
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../protocol/frames.ts";
import { anonymousFetch } from "./helpers.ts";

describe("health", () => {
  it("/healthz answers after a storage round trip, with its earlier fields", async () => {
    const res = await anonymousFetch("/healthz");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ ok: true, protocol: PROTOCOL_VERSION, auth: "on", storage: { ok: true } });
    expect(typeof body.version).toBe("string");
    expect(typeof (body.storage as { ms: unknown }).ms).toBe("number");
  });

  it("/readyz is ready when storage answers (no disk to measure inside workerd)", async () => {
    const res = await anonymousFetch("/readyz");
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ ready: true, storage: { ok: true } });
    expect(body.disk).toBeUndefined();
  });
});
